//! Secret names become file names (`secrets/<name>.age`), so they must not be able to
//! point anywhere else. One function, so the inventory's own check can call it too.

/// `Ok` when `name` is usable as `secrets/<name>.age`; else why not.
pub fn validate_secret_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a secret name can't be empty".into());
    }
    if name.contains('/') || name.contains('\\') {
        return Err(format!("secret name `{name}` contains a path separator"));
    }
    if name.contains("..") {
        return Err(format!("secret name `{name}` contains `..`"));
    }
    if name.starts_with('.') {
        return Err(format!("secret name `{name}` starts with a dot"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || *c == '\0')
    {
        return Err(format!(
            "secret name `{}` contains the character {c:?}",
            name.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_secret_name as v;

    #[test]
    fn names() {
        assert!(v("restic-password").is_ok());
        assert!(v("a.b_c").is_ok());
        assert_eq!(
            v("../x").unwrap_err(),
            "secret name `../x` contains a path separator"
        );
        assert_eq!(v("a..b").unwrap_err(), "secret name `a..b` contains `..`");
        assert_eq!(v(".x").unwrap_err(), "secret name `.x` starts with a dot");
        assert!(v("a\\b").is_err());
        assert!(v("").is_err());
        assert!(v("a b").is_err());
        assert!(v("a\nb").is_err());
    }
}
