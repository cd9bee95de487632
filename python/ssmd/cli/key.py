"""`ssmd key set|list|verify|rotate`: exchange API keys kept by ssmd (docs/keys.md)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
import yaml

from ssmd.cli.options import ConfigDirOption, EnvOption, JsonOption

if TYPE_CHECKING:
    from ssmd.keys.store import KalshiKey

app = typer.Typer(
    help="Exchange API keys: keep them (owner-only file or SealedSecret), list, verify, rotate.",
    no_args_is_help=True,
)

NameArgument = typer.Argument(..., help="The key's name (lower-case letters, digits, '-', '.').")
KeyIdOption = typer.Option(..., "--key-id", help="The Kalshi API key id.")
PrivateKeyOption = typer.Option(
    ..., "--private-key", help="The PEM file of the key's RSA private key.", exists=True
)
SealCertOption = typer.Option(
    None,
    "--seal-cert",
    help="Seal for a cluster: its Sealed Secrets certificate (`kubeseal --fetch-cert`).",
)
NamespaceOption = typer.Option(
    None, "--namespace", help="The SealedSecret's namespace (default: ssmd-ENV)."
)
OutOption = typer.Option(
    None, "--out", help="Where the SealedSecret goes (default: beside the key store's index)."
)
RestUrlOption = typer.Option(None, "--rest-url", help="Override the REST URL.")


def _read_key(key_id: str, private_key: Path) -> KalshiKey:
    from ssmd.exceptions import ConfigError
    from ssmd.keys.store import KalshiKey

    try:
        pem = private_key.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"private key file {private_key} cannot be read ({exc.strerror})"
        ) from None
    return KalshiKey.from_pem(key_id, pem, f"file {private_key}")


def _keep(
    env: str,
    name: str,
    key: KalshiKey,
    seal_cert: Path | None,
    namespace: str | None,
    out: Path | None,
) -> str:
    """Store `key` under `name` (replacing what was there); where it went, for people."""
    from ssmd.keys.sealing import load_certificate, sealed_secret
    from ssmd.keys.store import KeyStore

    store = KeyStore(env)
    if seal_cert is None:
        return str(store.save(name, key))
    manifest = sealed_secret(
        load_certificate(seal_cert), namespace or f"ssmd-{env}", name, key.fields()
    )
    target = out or store.dir / f"{name}.sealedsecret.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    store.save_sealed(name, key, target)
    return f"{target} (SealedSecret {manifest['metadata']['namespace']}/{name})"


def _rest_url(env: str, config_dir: Path | None, rest_url: str | None) -> str:
    from ssmd.config import Overrides, load_environment

    return load_environment(env, config_dir, Overrides(rest_url=rest_url)).endpoint.rest_url


def _verify(key: KalshiKey, url: str) -> None:
    """Exit 3 (`authentication failed`) when the exchange refuses the key, 1 when it
    cannot be asked."""
    from ssmd.exceptions import RestError
    from ssmd.keys.verify import verify_key

    try:
        asyncio.run(verify_key(key, url))
    except RestError as exc:
        typer.echo(f"error: could not verify key {key.fingerprint} at {url}: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command("set")
def set_key(
    env: EnvOption,
    name: str = NameArgument,
    key_id: str = KeyIdOption,
    private_key: Path = PrivateKeyOption,
    seal_cert: Path | None = SealCertOption,
    namespace: str | None = NamespaceOption,
    out: Path | None = OutOption,
) -> None:
    """Keep a key: in a file only you can read, or sealed for a cluster (--seal-cert)."""
    from ssmd.cli.exits import component_errors
    from ssmd.keys.store import check_name

    with component_errors():
        check_name(name)
        key = _read_key(key_id, private_key)
        where = _keep(env, name, key, seal_cert, namespace, out)
    typer.echo(f"key {name} ({key.fingerprint}) kept in {where}")
    typer.echo(f"refer to it in the environment as: kalshi_api_key: sealed:{name}")
    typer.echo(f"                                   kalshi_private_key: sealed:{name}")


@app.command("list")
def list_keys(env: EnvOption, as_json: JsonOption = False) -> None:
    """Names, backends, fingerprints and ages of the keys (never their material)."""
    from ssmd.cli.exits import component_errors
    from ssmd.cli.output import print_json, print_table
    from ssmd.keys.store import KeyStore, mounted_entries

    with component_errors():
        entries = KeyStore(env).entries() + mounted_entries(os.environ)
    now = time.time()
    rows = [e.as_dict(now) for e in entries]
    if as_json:
        print_json(rows)
        return
    print_table(
        f"keys of {env}",
        ["name", "backend", "fingerprint", "created", "age (days)", "where"],
        [
            [r["name"], r["backend"], r["fingerprint"], r["created"], r["age_days"], r["where"]]
            for r in rows
        ],
    )


@app.command()
def verify(
    env: EnvOption,
    name: str = NameArgument,
    config_dir: ConfigDirOption = None,
    rest_url: str | None = RestUrlOption,
) -> None:
    """Prove a key works: one signed request to the environment's REST endpoint."""
    from ssmd.cli.exits import component_errors
    from ssmd.keys.store import load_key

    with component_errors():
        key = load_key(env, name)
        url = _rest_url(env, config_dir, rest_url)
        typer.echo(f"key {name}: {key.fingerprint}")
        _verify(key, url)
    typer.echo(f"key {name} works: {url} accepted a request signed with it")


@app.command()
def rotate(
    env: EnvOption,
    name: str = NameArgument,
    key_id: str = KeyIdOption,
    private_key: Path = PrivateKeyOption,
    config_dir: ConfigDirOption = None,
    rest_url: str | None = RestUrlOption,
    seal_cert: Path | None = SealCertOption,
    namespace: str | None = NamespaceOption,
    out: Path | None = OutOption,
) -> None:
    """Swap in a new key: it must work (a signed request) before the old one is removed."""
    from ssmd.cli.exits import component_errors
    from ssmd.exceptions import ConfigError
    from ssmd.keys.store import KeyStore, check_name

    with component_errors():
        check_name(name)
        old = {e.name: e for e in KeyStore(env).entries()}.get(name)
        if old is not None and old.backend == "sealed" and seal_cert is None:
            raise ConfigError(
                f"key {name} is sealed for a cluster ({old.where}). Fix: pass --seal-cert "
                "(and --namespace/--out as when it was set) to seal the new key the same way"
            )
        new = _read_key(key_id, private_key)
        url = _rest_url(env, config_dir, rest_url)
        typer.echo(f"new key for {name}: {new.fingerprint}; verifying it at {url}")
        _verify(new, url)  # the old key stays in place when this fails
        where = _keep(env, name, new, seal_cert, namespace, out)
    was = f" (was {old.fingerprint})" if old is not None else ""
    typer.echo(f"key {name} rotated to {new.fingerprint}{was}, kept in {where}")
