"""The registry of broadcasting backends by name, and building the configured failover
chain from an app config (``BROADCASTERS`` and each backend's ``<NAME>_*`` settings).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from raregen.publish.broadcasters.failover import FailoverBroadcaster
from raregen.publish.broadcasters.interface import Broadcaster

REGISTRY: dict[str, type] = {}


def register_broadcaster(name: str, cls: type | None = None) -> Any:
    """Register a backend class under ``name``; usable as ``@register_broadcaster("arc")``.

    Raises:
        ValueError: another class is already registered under that name.
    """

    def add(klass: type) -> type:
        existing = REGISTRY.get(name)
        if existing is not None and existing is not klass:
            raise ValueError(f"broadcaster {name!r} already registered ({existing.__name__})")
        REGISTRY[name] = klass
        return klass

    return add(cls) if cls is not None else add


def build_broadcaster(name: str, **settings: Any) -> Broadcaster:
    """Make the backend registered as ``name`` from keyword settings.

    Uses the class's ``from_settings(**settings)`` classmethod if it has one (it should
    ignore settings it does not know), else ``cls(**settings)``.

    Raises:
        ValueError: no backend of that name (the message lists the registered ones).
    """
    cls = REGISTRY.get(name)
    if cls is None:
        raise ValueError(
            f"unknown broadcaster {name!r}; registered: {', '.join(sorted(REGISTRY)) or 'none'}"
        )
    factory = getattr(cls, "from_settings", None)
    backend = factory(**settings) if callable(factory) else cls(**settings)
    return backend  # type: ignore[no-any-return]


def settings_from_config(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of backend ``name`` in an app config: every key ``<NAME>_<KEY>``
    becomes ``key`` (lower case). E.g. ``ARC_URL``, ``ARC_API_KEY`` -> ``url``, ``api_key``;
    ``NODE_RPC_URL`` -> ``rpc_url``. Keys whose value is None are left out."""
    prefix = name.upper() + "_"
    return {
        key[len(prefix) :].lower(): value
        for key, value in config.items()
        if isinstance(key, str) and key.startswith(prefix) and value is not None
    }


def build_chain(
    config: Mapping[str, Any],
    node_rpc: Callable[[], Any] | None = None,
) -> Broadcaster:
    """Build the broadcaster of an app config: the backends named in
    ``config["BROADCASTERS"]`` (a list, or a comma-separated string; default ``["node"]``)
    in failover order.

    Args:
        config: mapping with ``BROADCASTERS`` and each backend's ``<NAME>_*`` settings.
        node_rpc: factory of the :class:`~raregen.chain.rpc.NodeRPC` the "node" backend
            uses (else it builds one from ``NODE_RPC_URL``/``NODE_RPC_USER``/
            ``NODE_RPC_PASSWORD``).

    Returns:
        The single backend, or a :class:`FailoverBroadcaster` over several.

    Raises:
        ValueError: an unknown backend name, or an empty list.
    """
    names = config.get("BROADCASTERS") or ["node"]
    if isinstance(names, str):
        names = names.split(",")
    names = [n.strip() for n in names if n and n.strip()]
    if not names:
        raise ValueError("BROADCASTERS is empty")
    backends: list[Broadcaster] = []
    for name in names:
        settings = settings_from_config(name, config)
        if name == "node" and node_rpc is not None:
            settings["rpc"] = node_rpc()
        backends.append(build_broadcaster(name, **settings))
    return backends[0] if len(backends) == 1 else FailoverBroadcaster(backends)
