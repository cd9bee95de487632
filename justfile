# ssmd developer recipes. `just --list` shows them; `just test` and `just demo`
# work on a fresh clone: each runs whatever setup is missing.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := justfile_directory() / ".venv"
tested_rust := "1.95.0"
export VIRTUAL_ENV := venv
export PATH := venv / "bin" + ":" + env_var("PATH")

# Show the recipes.
default:
    @just --list

# The Rust version CI tests with (rust-toolchain.toml says why it is not pinned there):
# another one works as long as it is at least the workspace's rust-version, with a warning.
toolchain:
    #!/usr/bin/env bash
    set -euo pipefail
    have=$(rustc --version | cut -d' ' -f2)
    if [ "$have" != "{{tested_rust}}" ]; then
        echo "warning: Rust $have here; CI tests with {{tested_rust}} (clippy's lints may differ)" >&2
    fi

# The virtualenv at .venv with every dependency, and the extension (release build, redone
# when rust/, Cargo.* or pyproject.toml change; `just build` forces it).
setup: toolchain
    #!/usr/bin/env bash
    set -euo pipefail
    [ -x .venv/bin/python ] || python3 -m venv .venv
    stamp=".venv/.deps-$(sha256sum pyproject.toml | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q "maturin>=1.9.4,<2"
        rm -f .venv/.deps-*
        touch "$stamp.pending"
    fi
    # Rebuild the extension only when its sources or the package metadata changed.
    src=".venv/.build-$(find rust Cargo.toml Cargo.lock pyproject.toml -type f | sort | xargs sha256sum | sha256sum | cut -c1-16)"
    if [ ! -f "$src" ] || ! compgen -G "python/ssmd/_core*.so" >/dev/null; then
        just build
        rm -f .venv/.build-*
        touch "$src"
    fi
    [ -f "$stamp" ] || mv "$stamp.pending" "$stamp"

# Build the extension in release mode into the virtualenv (stale binaries removed first).
build:
    rm -f python/ssmd/_core*.so
    maturin develop --release --extras dev -q

# Every test: Rust unit tests (a debug build, so that arithmetic overflow panics instead
# of wrapping), then pytest (parallel where safe) against the release extension.
test: setup
    cargo test --workspace -q
    python -m pytest -q -n 2 --dist loadgroup --durations=25

# Rust tests only.
test-rust:
    cargo test --workspace -q

# pytest only (assumes `just setup` has run); pass arguments through, e.g. `just pytest -k book`.
pytest *ARGS: setup
    python -m pytest {{ARGS}}

# Benchmarks: writes figures to benches/RESULTS.md (see benches/README.md).
bench *ARGS: setup
    python benches/run.py {{ARGS}}

# Micro-benchmarks of the hot paths (pytest-benchmark, benches/micro/): each run is saved in
# benches/micro/.benchmarks (not committed) and compared with the run before; options pass
# through (`just bench-micro --benchmark-compare-fail=median:10%`, `-k book`).
bench-micro *ARGS: setup
    python -m pytest benches/micro --benchmark-enable --benchmark-only \
        --benchmark-storage=benches/micro/.benchmarks --benchmark-autosave \
        --benchmark-compare --benchmark-group-by=group {{ARGS}}

# ruff, mypy, cargo clippy and stubtest of python/ssmd/_core.pyi against the built module.
lint: setup
    ruff check python tests benches
    ruff format --check python tests benches
    mypy
    cargo fmt --all --check
    cargo clippy --workspace --release --all-targets -q -- -D warnings
    python -m mypy.stubtest ssmd._core --allowlist .mypy-stubtest-allowlist

# Format Python and Rust sources.
fmt: setup
    ruff format python tests benches
    ruff check --fix -q python tests benches
    cargo fmt --all

# Build a release wheel into dist/ (manylinux2014: linked against glibc 2.17 by zig).
wheel: setup
    maturin build --release --zig --out dist -q

# The container image of deploy/Dockerfile (maturin builds the wheel, a slim Python runs it;
# its base images come from a registry), with docker, podman or buildah, whichever is installed.
image TAG="ssmd:latest":
    #!/usr/bin/env bash
    set -euo pipefail
    for tool in docker podman; do
        if command -v "$tool" >/dev/null; then exec "$tool" build -f deploy/Dockerfile -t "{{TAG}}" .; fi
    done
    if command -v buildah >/dev/null; then exec buildah bud -f deploy/Dockerfile -t "{{TAG}}" .; fi
    echo "image: none of docker, podman or buildah is installed"; exit 1

# The same image from Debian's packages only, no registry: the wheel of `just wheel` on a
# bookworm root file system made by mmdebstrap (deploy/debian-image.sh, docker).
image-debian TAG="ssmd:debian": wheel
    deploy/debian-image.sh "{{TAG}}"

# Fail if the committed Cap'n Proto code or the package's copy of the schema differs from schemas/ (needs `capnp`).
check-schemas:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! cmp -s schemas/ssmd.capnp python/ssmd/schemas/ssmd.capnp; then
        echo "python/ssmd/schemas/ssmd.capnp differs from schemas/ssmd.capnp: run 'just gen-schemas' and commit the result"; exit 1
    fi
    command -v capnp >/dev/null || { echo "check-schemas needs the capnp compiler (Debian: apt-get install capnproto)"; exit 1; }
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
    cargo run -q -p ssmd-schemagen -- "$out"
    if ! diff -u rust/ssmd-core/src/generated/ssmd_capnp.rs "$out/ssmd_capnp.rs"; then
        echo "schemas/ssmd.capnp changed: run 'just gen-schemas' and commit the result"; exit 1
    fi
    echo "generated Cap'n Proto code and the package's copy of the schema match schemas/"

# After editing schemas/ssmd.capnp: regenerate the Cap'n Proto code and the package's copy of the schema.
gen-schemas:
    cargo run -q -p ssmd-schemagen -- rust/ssmd-core/src/generated
    cp schemas/ssmd.capnp python/ssmd/schemas/ssmd.capnp

# `ssmd up --env kalshi-sim` (docs/up.md); options pass through (`just demo --port 9000`); Ctrl-C stops.
# The demo: the whole system against the simulator; the web page is at http://127.0.0.1:8080/.
demo *ARGS: setup
    ssmd up --env kalshi-sim {{ARGS}}

# Remove build outputs and the virtualenv.
clean:
    rm -rf .venv target dist python/ssmd/_core*.so

# Regenerate the JSON Schemas of the config kinds (exchanges/schema/*.json) from the models.
gen-config-schema:
    python -m ssmd.config.jsonschema exchanges/schema
