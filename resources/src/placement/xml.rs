//! A small element tree over quick-xml: the CIB is read once into this tree, then
//! interpreted by [`super::cib`].

use crate::Error;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// One XML element: name, attributes in document order, child elements.
#[derive(Debug, Clone, Default)]
pub struct Element {
    /// Tag name.
    pub name: String,
    /// Attributes, in document order.
    pub attrs: Vec<(String, String)>,
    /// Child elements (text is ignored: the CIB has none that matters).
    pub children: Vec<Element>,
}

impl Element {
    /// The value of attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Child elements named `name`.
    pub fn kids<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The first child element named `name`.
    pub fn kid(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// A short description for error messages: `<tag id="...">`.
    pub fn describe(&self) -> String {
        match self.attr("id") {
            Some(id) => format!("<{} id=\"{}\">", self.name, id),
            None => format!("<{}>", self.name),
        }
    }
}

fn start(e: &BytesStart<'_>) -> Result<Element, Error> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| Error::CibXml {
            detail: format!("bad attribute in <{name}>: {err}"),
        })?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let value = a
            .unescape_value()
            .map_err(|err| Error::CibXml {
                detail: format!("bad value of attribute {key} in <{name}>: {err}"),
            })?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
    })
}

/// Parse a document into its root element.
pub fn parse(text: &str) -> Result<Element, Error> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let ev = reader.read_event().map_err(|err| Error::CibXml {
            detail: format!("malformed XML at byte {}: {err}", reader.buffer_position()),
        })?;
        match ev {
            Event::Start(e) => stack.push(start(&e)?),
            Event::Empty(e) => {
                let el = start(&e)?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => {
                        return Err(Error::CibXml {
                            detail: "more than one root element".into(),
                        })
                    }
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or_else(|| Error::CibXml {
                    detail: "unbalanced end tag".into(),
                })?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => {
                        return Err(Error::CibXml {
                            detail: "more than one root element".into(),
                        })
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(Error::CibXml {
            detail: format!("unexpected end of document inside <{}>", stack[0].name),
        });
    }
    root.ok_or_else(|| Error::CibXml {
        detail: "empty document".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_and_escapes() {
        let e = parse("<a x=\"1&amp;2\"><b/><c y='z'>t</c></a>").unwrap();
        assert_eq!(e.name, "a");
        assert_eq!(e.attr("x"), Some("1&2"));
        assert_eq!(e.children.len(), 2);
        assert_eq!(e.kid("c").unwrap().attr("y"), Some("z"));
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a>").is_err());
        assert!(parse("").is_err());
    }
}
