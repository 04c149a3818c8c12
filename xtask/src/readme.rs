//! Writing a bench's figures into the README, so no figure there is typed by hand.
//!
//! A table lives between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; the bench that
//! measures it replaces everything in between with what it just printed.

use anyhow::{bail, Context, Result};

use crate::util::root;

/// Replaces the README's `NAME` section with `body`.
pub fn write_section(name: &str, body: &str) -> Result<()> {
    let path = root().join("README.md");
    let text = std::fs::read_to_string(&path).context("reading README.md")?;
    let updated = replace_section(&text, name, body)?;
    std::fs::write(&path, updated).context("writing README.md")?;
    println!("README.md: `{name}` table updated");
    Ok(())
}

fn replace_section(text: &str, name: &str, body: &str) -> Result<String> {
    let open = format!("<!-- bench:{name} -->");
    let close = format!("<!-- /bench:{name} -->");
    let (Some(start), Some(end)) = (text.find(&open), text.find(&close)) else {
        bail!("README.md has no `{open}` … `{close}` section");
    };
    if end < start {
        bail!("README.md's `{name}` section closes before it opens");
    }
    let start = start + open.len();
    Ok(format!(
        "{}\n{}\n{}",
        &text[..start],
        body.trim_end(),
        &text[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::replace_section;

    #[test]
    fn replaces_only_the_named_section() {
        let text = "a\n<!-- bench:size -->\nold\n<!-- /bench:size -->\nb\n";
        let new = replace_section(text, "size", "| new |").unwrap();
        assert_eq!(
            new,
            "a\n<!-- bench:size -->\n| new |\n<!-- /bench:size -->\nb\n"
        );
        assert!(replace_section(text, "swarm", "x").is_err());
    }
}
