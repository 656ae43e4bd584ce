# Shared by scripts/run, scripts/test and scripts/bench: install what is missing.
# Sourced, not run.

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root to run: $*" >&2
        return 1
    fi
}

# ensure_apt PKG...: installs the Debian packages that are not installed yet.
ensure_apt() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}" >&2
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

ensure_build_deps() {
    ensure_apt libevent-dev libsqlite3-dev libssl-dev pkg-config sqlite3
    command -v swift >/dev/null || { echo "swift is not on PATH" >&2; return 1; }
}

# ensure_pip REQUIREMENTS_FILE: pinned Python packages for tests and tools.
ensure_pip() {
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r "$1"
}

# new_secret: a whsec_ secret, generated on this machine, never committed.
new_whsec() { echo "whsec_$(head -c 32 /dev/urandom | base64 -w0)"; }
new_key() { head -c 24 /dev/urandom | base64 -w0 | tr '+/' '-_'; }
