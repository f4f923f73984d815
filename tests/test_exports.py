from __future__ import annotations

import inspect

import callsid_resolver
from callsid_resolver import CallSidResolverError


def test_all_is_complete() -> None:
    # The order is ruff's (RUF022), checked by lint.
    exported = callsid_resolver.__all__
    assert len(exported) == len(set(exported))
    # "@py…" names are pytest's assertion-rewriting helpers, not ours.
    public = {
        n
        for n in dir(callsid_resolver)
        if not n.startswith(("_", "@")) and not inspect.ismodule(getattr(callsid_resolver, n))
    }
    assert public <= set(exported) | {"annotations"}
    for name in exported:
        assert getattr(callsid_resolver, name) is not None


def test_every_exported_exception_descends_from_the_root() -> None:
    errors = [
        getattr(callsid_resolver, n)
        for n in callsid_resolver.__all__
        if isinstance(getattr(callsid_resolver, n), type)
        and issubclass(getattr(callsid_resolver, n), Exception)
    ]
    assert len(errors) >= 12
    assert all(issubclass(e, CallSidResolverError) for e in errors)


def test_public_objects_are_documented() -> None:
    for name in callsid_resolver.__all__:
        obj = getattr(callsid_resolver, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name} has no docstring"
