//! A throwaway QEMU guest for the one relay measurement this machine's limits forbid: 50 000 idle
//! connections need more open files per process than the host's hard limit allows, and raising it
//! needs CAP_SYS_RESOURCE. Inside a guest the bench is root of its own kernel, so the limit is its to
//! set.
//!
//! The guest is Debian's own kernel (`linux-image-amd64`, unpacked, not installed) and an initramfs
//! made here: busybox, the relay and load-generator binaries under test with the shared libraries
//! they link, and an `/init` script that runs the same idle measurement as on the host and prints
//! the load generator's result lines on the serial console. QEMU emulates the CPU (TCG): KVM is not
//! usable on every machine of this kind, and memory and held connections, the two figures measured
//! here, do not depend on the speed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::tools;

const QEMU: &str = "/usr/bin/qemu-system-x86_64";
const BUSYBOX: &str = "/bin/busybox";
/// Guest size: the machine's 2 cores, and memory for 50 000 connections on both ends.
const GUEST_CPUS: &str = "2";
const GUEST_MIB: &str = "8192";
/// The whole guest run, boot to power-off, at most.
const GUEST_TIMEOUT_S: u32 = 3600;

/// One relay run inside the guest: a label for the result line and the relay's arguments.
pub struct GuestRelay {
    pub label: &'static str,
    pub args: Vec<String>,
}

/// What the guest ran and printed.
pub struct GuestRun {
    /// `label` → the load generator's `result …` line, without the prefix.
    pub results: Vec<(String, String)>,
    /// The kernel, e.g. `Linux 6.1.0-56-amd64`.
    pub kernel: String,
}

/// Runs `loadgen idle --connections N` against each relay in a fresh guest.
pub fn idle_in_guest(
    scratch: &Path,
    relay: &Path,
    loadgen: &Path,
    relays: &[GuestRelay],
    connections: usize,
) -> Result<GuestRun> {
    tools::ensure_debian_packages(
        "QEMU and busybox",
        &[QEMU, BUSYBOX],
        &["qemu-system-x86", "busybox-static"],
    )?;
    let dir = scratch.join("guest");
    let (kernel, version) = kernel(&dir)?;
    let root = dir.join("initramfs");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    for sub in ["bin", "proc", "sys", "dev", "tmp", "work"] {
        std::fs::create_dir_all(root.join(sub))?;
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox"))?;
    for applet in ["sh", "mount", "ip", "sleep", "cat", "grep", "sed", "head", "kill", "poweroff"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    for binary in [relay, loadgen] {
        let name = binary.file_name().context("binary name")?;
        std::fs::copy(binary, root.join("work").join(name))?;
        for lib in shared_libraries(binary)? {
            let to = root.join(lib.strip_prefix("/").unwrap_or(&lib));
            std::fs::create_dir_all(to.parent().context("library directory")?)?;
            std::fs::copy(&lib, &to).with_context(|| format!("copying {}", lib.display()))?;
        }
    }
    let init = root.join("init");
    std::fs::write(&init, init_script(relays, connections)?)?;
    let mut perms = std::fs::metadata(&init)?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&init, perms)?;

    let image = dir.join("initramfs.cpio.gz");
    let pack = format!(
        "cd '{}' && find . | {BUSYBOX} cpio -o -H newc 2>/dev/null | gzip -1 > '{}'",
        root.display(),
        image.display()
    );
    tools::run(Command::new("sh").arg("-c").arg(pack))?;

    eprintln!("guest: {version}, {GUEST_CPUS} emulated CPUs, {GUEST_MIB} MiB (a few minutes per relay)");
    let out = Command::new("timeout")
        .arg(GUEST_TIMEOUT_S.to_string())
        .arg(QEMU)
        .args(["-accel", "tcg,thread=multi", "-cpu", "max", "-smp", GUEST_CPUS, "-m", GUEST_MIB])
        .args(["-nographic", "-no-reboot", "-kernel"])
        .arg(&kernel)
        .arg("-initrd")
        .arg(&image)
        .args(["-append", "console=ttyS0 quiet panic=-1 rdinit=/init"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("starting QEMU")?;
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    for line in console.lines().filter(|l| l.starts_with("guest:")) {
        eprintln!("{line}");
    }
    let results = guest_results(&console);
    if results.len() != relays.len() {
        let tail: Vec<&str> = console.lines().rev().take(20).collect();
        bail!(
            "the guest printed {} of {} results ({}); its console ended with:\n{}",
            results.len(),
            relays.len(),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(GuestRun { results, kernel: format!("Linux {version}") })
}

/// The `guest-result LABEL result …` lines of the guest's console, as (label, `k=v …`).
fn guest_results(console: &str) -> Vec<(String, String)> {
    console
        .lines()
        .filter_map(|line| line.strip_prefix("guest-result ")?.split_once(" result "))
        .map(|(label, result)| (label.to_owned(), result.to_owned()))
        .collect()
}

/// Debian's current kernel image, unpacked once into `dir`: its path and version.
fn kernel(dir: &Path) -> Result<(PathBuf, String)> {
    std::fs::create_dir_all(dir)?;
    // `linux-image-amd64` is a metapackage; the image is the package it depends on.
    let depends = Command::new("apt-cache").args(["depends", "linux-image-amd64"]).output()?;
    let depends = String::from_utf8_lossy(&depends.stdout);
    let package = depends
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: linux-image-"))
        .map(|v| format!("linux-image-{v}"))
        .context("apt-cache knows no linux-image-amd64 (run apt-get update)")?;
    let version = package.trim_start_matches("linux-image-").to_owned();
    let vmlinuz = dir.join(format!("boot/vmlinuz-{version}"));
    if !vmlinuz.exists() {
        tools::run(Command::new("apt-get").current_dir(dir).args(["download", &package]))?;
        let deb = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb") && p.to_string_lossy().contains(&package))
            .context("the downloaded kernel package")?;
        let unpack = format!(
            "dpkg-deb --fsys-tarfile '{}' | tar -x -C '{}' ./boot/vmlinuz-{version}",
            deb.display(),
            dir.display()
        );
        tools::run(Command::new("sh").arg("-c").arg(unpack))?;
        std::fs::remove_file(&deb)?;
    }
    Ok((vmlinuz, version))
}

/// The shared libraries `binary` loads (with the dynamic loader), from `ldd`.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output().context("running ldd")?;
    Ok(ldd_paths(&String::from_utf8_lossy(&out.stdout)))
}

/// The file paths in `ldd`'s output: `name => /path (addr)` or `/path (addr)`; the vDSO has none.
fn ldd_paths(output: &str) -> Vec<PathBuf> {
    output
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')).map(PathBuf::from))
        .collect()
}

/// The guest's `/init`: start each relay, measure, stop it; then power off.
fn init_script(relays: &[GuestRelay], connections: usize) -> Result<String> {
    let mut s = String::from(
        "#!/bin/sh\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sys /sys\n\
         mount -t devtmpfs dev /dev\n\
         mount -t tmpfs tmp /tmp\n\
         ip link set lo up\n\
         echo '1024 65535' > /proc/sys/net/ipv4/ip_local_port_range\n\
         ulimit -n 200000\n\
         echo \"guest: open-file limit $(ulimit -n), $(grep -c ^processor /proc/cpuinfo) CPUs\"\n",
    );
    for relay in relays {
        let args = relay.args.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(" ");
        writeln!(
            s,
            "DOORLESS_LOG=warn /work/relay {args} > /tmp/relay.out 2>&1 &\n\
             RP=$!\n\
             i=0; while ! grep -q http:// /tmp/relay.out && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n\
             ADDR=$(grep -o 'http://[^ ]*' /tmp/relay.out | head -1 | sed 's#http://##')\n\
             echo \"guest: {label}: {connections} idle connections\"\n\
             /work/loadgen idle --addr \"$ADDR\" --connections {connections} --pid $RP > /tmp/result 2>&1\n\
             sed -n 's/^result /guest-result {label} result /p' /tmp/result\n\
             grep -v '^result ' /tmp/result | head -5\n\
             kill $RP; wait $RP",
            label = relay.label,
        )?;
    }
    s.push_str("poweroff -f\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_every_library_and_the_loader_but_not_the_vdso() {
        let output = "\tlinux-vdso.so.1 (0x00007fce45f30000)\n\
                      \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007fce45efd000)\n\
                      \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fce4561e000)\n\
                      \t/lib64/ld-linux-x86-64.so.2 (0x00007fce45f32000)\n";
        assert_eq!(
            ldd_paths(output),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn result_lines_are_picked_out_of_the_console() {
        let console = "[    3.47] Run /init as init process\n\
                       guest: memory: 50000 idle connections\n\
                       guest-result memory result mode=idle opened=50000 held=50000\n\
                       some kernel line mentioning result mode=idle\n\
                       guest-result redb result mode=idle opened=49990 held=49990\n";
        assert_eq!(
            guest_results(console),
            [
                ("memory".to_owned(), "mode=idle opened=50000 held=50000".to_owned()),
                ("redb".to_owned(), "mode=idle opened=49990 held=49990".to_owned()),
            ]
        );
    }

    #[test]
    fn the_guest_init_raises_the_limit_runs_each_relay_in_turn_and_powers_off() {
        let relays = [
            GuestRelay { label: "memory", args: vec!["--store".into(), "memory".into()] },
            GuestRelay { label: "redb", args: vec!["--store".into(), "redb".into()] },
        ];
        let script = init_script(&relays, 50_000).unwrap();
        let limit = script.find("ulimit -n 200000").expect("raises the open-file limit");
        let memory = script.find("/work/relay '--store' 'memory'").expect("starts the memory relay");
        let redb = script.find("/work/relay '--store' 'redb'").expect("starts the redb relay");
        assert!(limit < memory && memory < redb);
        assert_eq!(script.matches("/work/loadgen idle --addr \"$ADDR\" --connections 50000").count(), 2);
        assert!(script.contains("s/^result /guest-result memory result /p"));
        assert!(script.contains("s/^result /guest-result redb result /p"));
        assert!(script.trim_end().ends_with("poweroff -f"));
    }
}
