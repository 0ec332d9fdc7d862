//! A small element tree over quick-xml: the CIB is read once into this tree, then
//! interpreted by [`super::cib`]. Names and attribute values borrow from the
//! document text (only values with entities are copied), which keeps the tree of a
//! large CIB small and quick to build.

use std::borrow::Cow;

use crate::Error;
use quick_xml::events::attributes::Attributes;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// One XML element: name, attributes in document order, child elements.
#[derive(Debug, Clone, Default)]
pub struct Element<'a> {
    /// Tag name.
    pub name: Cow<'a, str>,
    /// Attributes, in document order.
    pub attrs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Child elements (text is ignored: the CIB has none that matters).
    pub children: Vec<Element<'a>>,
}

impl<'a> Element<'a> {
    /// The value of attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// Child elements named `name`.
    pub fn kids<'b>(&'b self, name: &'b str) -> impl Iterator<Item = &'b Element<'a>> + 'b {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The first child element named `name`.
    pub fn kid(&self, name: &str) -> Option<&Element<'a>> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The same element owning all its text.
    pub fn into_owned(self) -> Element<'static> {
        Element {
            name: Cow::Owned(self.name.into_owned()),
            attrs: self
                .attrs
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned())))
                .collect(),
            children: self.children.into_iter().map(Element::into_owned).collect(),
        }
    }

    /// A short description for error messages: `<tag id="...">`.
    pub fn describe(&self) -> String {
        match self.attr("id") {
            Some(id) => format!("<{} id=\"{}\">", self.name, id),
            None => format!("<{}>", self.name),
        }
    }
}

/// The element of a start tag of `doc`. quick-xml's `Reader::from_str` hands out
/// slices of the document, so the tag's bytes are located in `doc` (by address,
/// checked against its bounds) and the element borrows from `doc`; a tag that is
/// not a slice of `doc` is copied.
fn start<'a>(doc: &'a str, e: &BytesStart<'_>) -> Result<Element<'a>, Error> {
    let name_len = e.name().as_ref().len();
    let raw: &[u8] = e;
    let base = doc.as_ptr() as usize;
    let at = raw.as_ptr() as usize;
    if at >= base && at - base + raw.len() <= doc.len() {
        let off = at - base;
        if let Some(content) = doc.get(off..off + raw.len()) {
            return start_in(content, name_len);
        }
    }
    let owned = String::from_utf8_lossy(raw).into_owned();
    Ok(start_in(&owned, name_len)?.into_owned())
}

fn start_in(content: &str, name_len: usize) -> Result<Element<'_>, Error> {
    let name = Cow::Borrowed(content.get(..name_len).unwrap_or(content));
    let mut attrs = Vec::new();
    for a in Attributes::new(content, name_len) {
        let a = a.map_err(|err| Error::CibXml {
            detail: format!("bad attribute in <{name}>: {err}"),
        })?;
        let key = match std::str::from_utf8(a.key.0) {
            Ok(k) => Cow::Borrowed(k),
            Err(_) => Cow::Owned(String::from_utf8_lossy(a.key.0).into_owned()),
        };
        let value = a.unescape_value().map_err(|err| Error::CibXml {
            detail: format!("bad value of attribute {key} in <{name}>: {err}"),
        })?;
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
    })
}

/// Parse a document into its root element.
pub fn parse(text: &str) -> Result<Element<'_>, Error> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element<'_>> = Vec::new();
    let mut root: Option<Element<'_>> = None;
    loop {
        let ev = reader.read_event().map_err(|err| Error::CibXml {
            detail: format!("malformed XML at byte {}: {err}", reader.buffer_position()),
        })?;
        match ev {
            Event::Start(e) => stack.push(start(text, &e)?),
            Event::Empty(e) => {
                let el = start(text, &e)?;
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
