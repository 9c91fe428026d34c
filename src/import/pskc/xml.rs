//! The XML tree a PSKC file is read into. Building it enforces the limits that keep a
//! hostile file from exhausting memory or the stack (depth, element count, packages),
//! and refuses document type declarations and undefined entities, so that no entity
//! is ever expanded.

use quick_xml::XmlVersion;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::reader::Reader;

use crate::import::{ImportError, MAX_TOKENS, excerpt};

/// How deeply XML elements may nest; PSKC needs about eight levels, and a limit keeps
/// a crafted file from building a tree whose teardown would exhaust the stack.
pub(super) const MAX_XML_DEPTH: usize = 64;

/// How many XML elements one file may hold in total, which bounds memory even when
/// the elements are not `KeyPackage` elements.
const MAX_XML_ELEMENTS: usize = 100 * MAX_TOKENS;

/// Maps byte offsets to 1-based line numbers, so XML errors can point at a line.
pub(super) struct LineIndex {
    newlines: Vec<usize>,
}

impl LineIndex {
    pub(super) fn new(bytes: &[u8]) -> Self {
        let newlines = bytes
            .iter()
            .enumerate()
            .filter(|(_, byte)| **byte == b'\n')
            .map(|(offset, _)| offset)
            .collect();
        Self { newlines }
    }

    pub(super) fn line_of(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&newline| newline < offset) + 1
    }
}

/// Converts a parser offset to `usize`, saturating so that a platform with a narrow
/// `usize` reports the last line rather than panicking.
fn to_offset(position: u64) -> usize {
    usize::try_from(position).unwrap_or(usize::MAX)
}

/// One XML element with everything PSKC parsing needs; a small tree is far easier to
/// query than a stream of events, and the builder's limits keep it small.
pub(super) struct Element {
    /// The qualified name as written, prefix included.
    pub(super) name: String,
    /// Attributes as (qualified name, value) pairs with entities resolved.
    attributes: Vec<(String, String)>,
    children: Vec<Element>,
    /// The element's own character data, concatenated.
    text: String,
    /// The 1-based line of the element's start tag.
    pub(super) line: usize,
}

/// Returns the part of a qualified name after its prefix, which is what PSKC
/// matching uses so that any prefix choice works.
fn local_part(name: &str) -> &str {
    name.split_once(':').map_or(name, |(_, local)| local)
}

impl Element {
    pub(super) fn local_name(&self) -> &str {
        local_part(&self.name)
    }

    /// Finds an attribute by local name, skipping namespace declarations.
    pub(super) fn attr(&self, local_name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(name, _)| {
                name != "xmlns" && !name.starts_with("xmlns:") && local_part(name) == local_name
            })
            .map(|(_, value)| value.as_str())
    }

    /// Finds an attribute by its exact qualified name, for namespace declarations.
    pub(super) fn raw_attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, value)| value.as_str())
    }

    pub(super) fn children_named<'s>(
        &'s self,
        local_name: &str,
    ) -> impl Iterator<Item = &'s Element> {
        self.children
            .iter()
            .filter(move |child| child.local_name() == local_name)
    }

    pub(super) fn child(&self, local_name: &str) -> Option<&Element> {
        self.children_named(local_name).next()
    }

    /// Follows a path of child names, taking the first match at each step.
    pub(super) fn descendant(&self, path: &[&str]) -> Option<&Element> {
        path.iter()
            .try_fold(self, |element, name| element.child(name))
    }

    pub(super) fn text(&self) -> &str {
        self.text.trim()
    }
}

/// Builds the element tree from XML text while enforcing the safety limits.
pub(super) struct TreeBuilder<'l> {
    lines: &'l LineIndex,
    stack: Vec<Element>,
    root: Option<Element>,
    elements: usize,
    packages: usize,
}

impl<'l> TreeBuilder<'l> {
    pub(super) fn new(lines: &'l LineIndex) -> Self {
        Self {
            lines,
            stack: Vec::new(),
            root: None,
            elements: 0,
            packages: 0,
        }
    }

    pub(super) fn build(mut self, text: &str) -> Result<Element, ImportError> {
        let mut reader = Reader::from_str(text);
        loop {
            let line = self.lines.line_of(to_offset(reader.buffer_position()));
            let event = reader.read_event().map_err(|error| {
                ImportError::at(
                    self.lines.line_of(to_offset(reader.error_position())),
                    format!("not XML: {}", excerpt(&error.to_string())),
                )
            })?;
            match event {
                Event::Start(tag) => {
                    let element = self.open(&tag, line)?;
                    self.stack.push(element);
                }
                Event::Empty(tag) => {
                    let element = self.open(&tag, line)?;
                    self.attach(element)?;
                }
                Event::End(_) => match self.stack.pop() {
                    Some(element) => self.attach(element)?,
                    None => {
                        return Err(ImportError::at(
                            line,
                            "not XML: a closing tag has no opening tag",
                        ));
                    }
                },
                Event::Text(content) => self.append_text(&content.xml10_content(), line)?,
                Event::CData(content) => self.append_text(&content.xml10_content(), line)?,
                Event::GeneralRef(reference) => {
                    let resolved = resolve_reference(&reference, line)?;
                    self.append_text(&resolved, line)?;
                }
                Event::DocType(_) => {
                    return Err(ImportError::at(
                        line,
                        "document type declarations are not allowed in a PSKC file, because they can define entities",
                    ));
                }
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                Event::Eof => break,
            }
        }
        if let Some(open) = self.stack.last() {
            return Err(ImportError::at(
                open.line,
                format!(
                    "not XML: the file ends before <{}> is closed",
                    excerpt(&open.name)
                ),
            ));
        }
        self.root
            .ok_or_else(|| ImportError::general("not XML: the file holds no element"))
    }

    fn open(&mut self, tag: &BytesStart<'_>, line: usize) -> Result<Element, ImportError> {
        if self.root.is_some() && self.stack.is_empty() {
            return Err(ImportError::at(
                line,
                "not XML: there is more than one root element",
            ));
        }
        if self.stack.len() >= MAX_XML_DEPTH {
            return Err(ImportError::at(
                line,
                format!("elements are nested more than {MAX_XML_DEPTH} levels deep"),
            ));
        }
        self.elements += 1;
        if self.elements > MAX_XML_ELEMENTS {
            return Err(ImportError::at(
                line,
                format!("the file holds more than {MAX_XML_ELEMENTS} XML elements"),
            ));
        }
        let name = tag.name().into_inner().to_owned();
        if self.stack.len() == 1 && local_part(&name) == "KeyPackage" {
            self.packages += 1;
            if self.packages > MAX_TOKENS {
                return Err(ImportError::at(
                    line,
                    format!("too many KeyPackages: a file may hold at most {MAX_TOKENS}"),
                ));
            }
        }
        let mut attributes = Vec::new();
        for attribute in tag.attributes() {
            let attribute = attribute.map_err(|error| xml_error(line, &error))?;
            let value = attribute
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|error| xml_error(line, &error))?;
            attributes.push((attribute.key.into_inner().to_owned(), value.into_owned()));
        }
        Ok(Element {
            name,
            attributes,
            children: Vec::new(),
            text: String::new(),
            line,
        })
    }

    fn attach(&mut self, element: Element) -> Result<(), ImportError> {
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(element),
            None if self.root.is_none() => self.root = Some(element),
            None => {
                return Err(ImportError::at(
                    element.line,
                    "not XML: there is more than one root element",
                ));
            }
        }
        Ok(())
    }

    fn append_text(&mut self, text: &str, line: usize) -> Result<(), ImportError> {
        match self.stack.last_mut() {
            Some(element) => element.text.push_str(text),
            None if text.trim().is_empty() => {}
            None => {
                return Err(ImportError::at(
                    line,
                    "not XML: text outside the root element",
                ));
            }
        }
        Ok(())
    }
}

/// Resolves a character reference or one of the five predefined entities; any other
/// entity is refused, since without a DTD it is undefined and with one it is a risk.
fn resolve_reference(reference: &BytesRef<'_>, line: usize) -> Result<String, ImportError> {
    match reference.resolve_char_ref() {
        Ok(Some(character)) => Ok(character.to_string()),
        Ok(None) => quick_xml::escape::resolve_predefined_entity(reference)
            .map(str::to_owned)
            .ok_or_else(|| {
                ImportError::at(
                    line,
                    format!(
                        "not XML: the entity &{}; is not defined",
                        excerpt(reference)
                    ),
                )
            }),
        Err(error) => Err(xml_error(line, &error)),
    }
}

/// Reports a parser complaint as "not XML", shortened because it may quote the file.
fn xml_error(line: usize, error: &dyn std::error::Error) -> ImportError {
    ImportError::at(line, format!("not XML: {}", excerpt(&error.to_string())))
}
