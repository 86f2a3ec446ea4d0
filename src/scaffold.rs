//! `sluice plugin new`: writes a new plugin project from the templates in `templates/`,
//! which are compiled into the binary.
//!
//! Every template is the same small plugin (drop client messages whose `data` is larger
//! than `max_bytes`), with its logic apart from the WIT glue so that it is unit-tested
//! natively, and a README that gives the one build command and the test command.

use std::path::{Path, PathBuf};

/// A plugin language with a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust with `sluice-plugin-sdk`, built with cargo for `wasm32-wasip2`.
    Rust,
    /// JavaScript, built with componentize-js (npm).
    Js,
    /// Python, built with componentize-py (PyPI).
    Python,
    /// C, built with clang for `wasm32-wasi`, wit-bindgen and wasm-tools.
    C,
}

/// `sluice plugin …`
#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Create a plugin project from a template.
    New {
        /// The plugin's name: lower-case letters, digits and `-`, starting with a letter.
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum)]
        lang: Lang,
        /// The folder to create (default: `./NAME`); it must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Why a plugin project could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name would not make a valid crate, package or file name.
    #[error("plugin name `{0}` must be lower-case letters, digits and `-`, starting with a letter")]
    BadName(String),
    /// The target folder has files in it; nothing is overwritten.
    #[error("{0} already exists and is not an empty folder")]
    Exists(PathBuf),
    /// A file or folder could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The WIT contract, copied into projects whose toolchain reads it at build time: 0.1.0,
/// which the JS, Python and C templates are written against (as the examples are), and
/// which the gateway keeps loading. The Rust template gets 0.2.0 through the SDK.
const WIT: &str = include_str!("../wit/deps/sluice-plugin-0.1.0/plugin.wit");

/// A template file: its path in the new project and its text, with `{{name}}`,
/// `{{crate_name}}` and `{{sdk_path}}` still to fill in.
type File = (&'static str, &'static str);

macro_rules! template {
    ($lang:literal: $($path:literal => $file:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../templates/", $lang, "/", $file)))),*]
    };
}

const RUST: &[File] = template!("rust":
    "Cargo.toml" => "Cargo.toml",
    "src/lib.rs" => "src/lib.rs",
    "README.md" => "README.md",
    ".gitignore" => "gitignore",
);

const JS: &[File] = template!("js":
    "package.json" => "package.json",
    "package-lock.json" => "package-lock.json",
    "src/logic.js" => "src/logic.js",
    "src/plugin.js" => "src/plugin.js",
    "test/logic.test.js" => "test/logic.test.js",
    "README.md" => "README.md",
    ".gitignore" => "gitignore",
);

const PYTHON: &[File] = template!("python":
    "app.py" => "app.py",
    "logic.py" => "logic.py",
    "test_logic.py" => "test_logic.py",
    "requirements.txt" => "requirements.txt",
    "build.sh" => "build.sh",
    "README.md" => "README.md",
    ".gitignore" => "gitignore",
);

const C: &[File] = template!("c":
    "logic.h" => "logic.h",
    "logic.c" => "logic.c",
    "plugin.c" => "plugin.c",
    "test.c" => "test.c",
    "build.sh" => "build.sh",
    "test.sh" => "test.sh",
    "adapter/Cargo.toml" => "adapter/Cargo.toml",
    "adapter/Cargo.lock" => "adapter/Cargo.lock",
    "adapter/lib.rs" => "adapter/lib.rs",
    "README.md" => "README.md",
    ".gitignore" => "gitignore",
);

impl Lang {
    fn files(self) -> &'static [File] {
        match self {
            Lang::Rust => RUST,
            Lang::Js => JS,
            Lang::Python => PYTHON,
            Lang::C => C,
        }
    }
}

/// Writes a new plugin project for `name` in `lang` into `dir` (created, with parents;
/// it must not exist or be empty). Returns the files written, relative to `dir`.
///
/// A Rust project depends on `sluice-plugin-sdk` by path: the `sdk/` folder of the
/// repository this binary was built from, since the SDK is not published.
pub fn new_plugin(name: &str, lang: Lang, dir: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    if dir.exists() && std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::Exists(dir.to_owned()));
    }
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk");
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate_name}}", &name.replace('-', "_"))
            .replace("{{sdk_path}}", &sdk.display().to_string())
    };
    let mut files: Vec<(PathBuf, String)> =
        lang.files().iter().map(|(path, text)| (PathBuf::from(path), fill(text))).collect();
    if lang != Lang::Rust {
        files.push((PathBuf::from("wit/plugin.wit"), WIT.to_owned()));
    }
    for (path, text) in &files {
        let full = dir.join(path);
        let io = |source| ScaffoldError::Io { path: full.clone(), source };
        std::fs::create_dir_all(full.parent().unwrap_or(dir)).map_err(io)?;
        std::fs::write(&full, text).map_err(io)?;
        if path.extension().is_some_and(|e| e == "sh") {
            make_executable(&full).map_err(io)?;
        }
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// What each language's project is built and tested with, for the message after
/// `plugin new`.
fn next_steps(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "cargo test && cargo build --release --target wasm32-wasip2",
        Lang::Js => "npm ci && node --test && npm run build",
        Lang::Python => "python3 -m unittest && ./build.sh",
        Lang::C => "./test.sh && ./build.sh",
    }
}

/// Runs a `sluice plugin` command; the exit status is 1 on failure.
pub fn run(command: &PluginCommand) -> std::process::ExitCode {
    match command {
        PluginCommand::New { name, lang, dir } => {
            let dir = dir.clone().unwrap_or_else(|| PathBuf::from(name));
            match new_plugin(name, *lang, &dir) {
                Ok(files) => {
                    for file in files {
                        println!("created {}", dir.join(file).display());
                    }
                    println!("next: cd {} && {}", dir.display(), next_steps(*lang));
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sluice plugin new: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
