//! Built-in components (everything under `plugins/` that is not a test fixture), embedded in
//! the binary and registered in every new workspace.

/// One built-in component.
pub struct Builtin {
    /// Registry name.
    pub name: &'static str,
    /// Its `plugin.toml`.
    pub manifest: &'static str,
    /// The component.
    pub wasm: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

/// The built-in with this name.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Where the build script put the plugins it built (fixtures included), for tests.
pub const PLUGINS_OUT: &str = env!("ATRIUM_PLUGINS_OUT");
