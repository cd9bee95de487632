# Type stub of the compiled extension ssmd._core (rust/ssmd-py).
# Checked against the built module by `just lint` (mypy.stubtest).
# Import from ssmd.core, never from here directly.

__version__: str
build_profile: str

# --- normalize (rust/ssmd-py/src/normalize.rs) ---

# --- archive (rust/ssmd-py/src/archive.rs) ---

# --- book (rust/ssmd-py/src/book.rs) ---
