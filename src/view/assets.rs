//! The page's files, compiled into the binary: `leafe view` needs no Node,
//! no network and no files beside the binary. The third-party library is
//! vendored under `assets/vendor/` with its licence.

/// (path under the site root, bytes, content type) of every asset.
pub const ASSETS: &[(&str, &[u8], &str)] = &[
    (
        "index.html",
        include_bytes!("assets/index.html"),
        "text/html; charset=utf-8",
    ),
    (
        "app.js",
        include_bytes!("assets/app.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "tree.js",
        include_bytes!("assets/tree.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "dom.js",
        include_bytes!("assets/dom.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "style.css",
        include_bytes!("assets/style.css"),
        "text/css; charset=utf-8",
    ),
    (
        "vendor/d3-hierarchy.min.mjs",
        include_bytes!("assets/vendor/d3-hierarchy.min.mjs"),
        "text/javascript; charset=utf-8",
    ),
    (
        "vendor/d3-hierarchy.LICENSE",
        include_bytes!("assets/vendor/d3-hierarchy.LICENSE"),
        "text/plain; charset=utf-8",
    ),
];

/// An asset's bytes and content type. With `LEAFE_VIEW_ASSETS=DIR` set
/// (for working on the page), the file of that name in DIR is served
/// instead of the compiled-in copy.
pub fn get(name: &str) -> Option<(std::borrow::Cow<'static, [u8]>, &'static str)> {
    let (_, bytes, content_type) = ASSETS.iter().find(|(n, _, _)| *n == name)?;
    if let Some(dir) = std::env::var_os("LEAFE_VIEW_ASSETS")
        && let Ok(b) = std::fs::read(std::path::Path::new(&dir).join(name))
    {
        return Some((std::borrow::Cow::Owned(b), content_type));
    }
    Some((std::borrow::Cow::Borrowed(*bytes), content_type))
}
