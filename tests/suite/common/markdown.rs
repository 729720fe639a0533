//! Reading the project's Markdown as GitHub renders it: prose outside code, heading anchors.

use std::collections::BTreeSet;

/// The lines of a Markdown text outside fenced code blocks.
pub(crate) fn prose_lines(markdown: &str) -> Vec<&str> {
    let mut in_code = false;
    let mut lines = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            lines.push(line);
        }
    }
    lines
}

/// The anchors GitHub gives the headings of a Markdown text: lower case, spaces to `-`, other
/// punctuation but `-` and `_` dropped, and `-1`, `-2`, ... after a repeated one.
pub(crate) fn github_anchors(markdown: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    for line in prose_lines(markdown) {
        let Some(heading) = line.strip_prefix('#') else { continue };
        let text = heading.trim_start_matches('#');
        if !text.starts_with(' ') {
            continue;
        }
        let base: String = text
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let mut anchor = base.clone();
        let mut n = 0;
        while anchors.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        anchors.insert(anchor);
    }
    anchors
}
