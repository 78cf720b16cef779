#!/usr/bin/env bash
# Builds target/debian/alertctl_<version>_<arch>.deb with cargo-deb:
#   packaging/build-deb.sh
# The release binary first; then, from it, the man pages (clap_mangen) and the bash, zsh
# and fish completions (clap_complete), so they never drift from --help; the units with
# the binary's path as the package installs it; then `cargo deb --no-build`, which reads
# [package.metadata.deb] in the root Cargo.toml. Needs cargo-deb (`cargo install
# cargo-deb`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p alertctl
A=target/assets
rm -rf "$A"
mkdir -p "$A/man" "$A/completions" "$A/systemd"
target/release/alertctl generate man "$A/man"
gzip -9n "$A"/man/*.1
target/release/alertctl generate completions bash >"$A/completions/alertctl"
target/release/alertctl generate completions zsh >"$A/completions/_alertctl"
target/release/alertctl generate completions fish >"$A/completions/alertctl.fish"
cp -r systemd/. "$A/systemd/"
# the package's binary is /usr/bin/alertctl
grep -rl /usr/local/bin/alertctl "$A/systemd" | xargs sed -i 's|/usr/local/bin/alertctl|/usr/bin/alertctl|g'
cargo deb --no-build
ls target/debian/*.deb
