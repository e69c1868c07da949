"""The plan's building blocks, shared by its sections (harness.plan_clusters, harness.plan_sections) and
its loader (harness.plan).

- the field types, each declared once: :class:`Expect` (what a valid value looks like, in words; it is
  also the field's description in the JSON Schema), ``Url``, ``VersionText``, ``Percent``, ``Text``,
  ``Reason``, and the choices (``Literal``; provider and splitter names come only from harness.registry);
- :class:`Section`, the base of every section: frozen, unknown keys refused, no type coercion;
- the messages: :func:`fail` / :func:`fail_all` (how a validator reports its problems), :func:`issue_lines`
  (pydantic's errors as the plan's lines: the field path, the bad value, what is valid, "did you mean");
- :func:`check_source`: config.source is a regular file or a decK folder under the plan's folder (or
  config.allowed_root), checked before anything reads it.
"""

from __future__ import annotations

import difflib
import os
import stat
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from harness.deck_rules import STATE_FILE_SUFFIXES
from harness.registry import PROVIDER_CHOICES, SPLITTERS

#: how many entries a decK folder named by config.source may hold before the check gives up
DECK_FOLDER_MAX_ENTRIES = 10_000

if TYPE_CHECKING:
    ProviderName = str
    SplitterName = str
else:  # the choices come only from harness.registry
    ProviderName = Literal[PROVIDER_CHOICES]
    SplitterName = Literal[tuple(SPLITTERS)]
Mode = Literal["dbless", "hybrid"]
Role = Literal["dbless", "cp", "dp"]
Upstream = Literal["echo", "none"]
ConfigFormat = Literal["kong", "deck"]
YLoad = Literal["backup", "keep"]
GateSource = Literal["probe", "balancer", "prometheus"]
ParityAgainst = Literal["x", "file"]
FailOn = Literal["error", "warning", "never"]

#: one problem found by a validator: (its path below the validated object, the text after the path, a hint)
Issue = tuple[tuple[str | int, ...], str, str | None]


@dataclass(frozen=True)
class Expect:
    """What a valid value looks like, in words, where the type and bounds do not say it all (it is also the
    field's description in the JSON Schema, so editors show it)."""

    text: str

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> Any:
        schema = handler(core_schema)
        if isinstance(schema, dict) and "$ref" not in schema:
            schema["description"] = self.text
        return schema


# ---------------------------------------------------------------------------------------------------
# field types

Url = Annotated[str, Field(pattern=r"^https?://[^/\s:]+(:\d+)?/?$"), Expect("http(s)://host:port")]
#: a URL that may carry a path (webhooks: Slack-style URLs have one)
UrlWithPath = Annotated[str, Field(pattern=r"^https?://[^/\s:]+(:\d+)?(/\S*)?$"), Expect("http(s)://host[:port][/path]")]
VersionText = Annotated[str, Expect('a Kong version such as "3.8.1" (MAJOR.MINOR.PATCH, or "3.4.3.12" for '
                                    'Enterprise)')]
Percent = Annotated[int, Field(ge=1, le=100), Expect("a whole percentage")]
Text = Annotated[str, Field(max_length=2000)]
Reason = Annotated[str, Field(min_length=1, max_length=2000), Expect("a sentence saying why")]


class Section(BaseModel):
    """Every plan section: frozen, unknown keys refused, no type coercion (``"3"`` is not 3)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=False,
                              json_schema_extra={"additionalProperties": False})

    def __setattr__(self, name: str, value: object) -> None:
        if name.startswith("_"):  # private attributes, set once by parse_plan
            super().__setattr__(name, value)
            return
        raise FrozenInstanceError(f"cannot assign to {name!r}: plan values are frozen; make a changed copy with "
                                  f"model_copy(update={{{name!r}: ...}})")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete {name!r}: plan values are frozen")

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        """``traffic:`` with nothing under it is an empty section; ``count: ~`` takes the default."""
        if data is None:
            return {}
        if isinstance(data, dict):
            known = {f.alias or name for name, f in cls.model_fields.items()}
            return {k: v for k, v in data.items() if not (v is None and k in known)}
        return data


def fail(text: str, *, at: tuple[str | int, ...] = (), hint: str | None = None) -> PydanticCustomError:
    """A plan problem found by a validator; ``text`` follows the field path (``at`` is below the
    validated object)."""
    return PydanticCustomError("plan", "{text}", {"issues": ((at, text, hint),)})


def fail_all(issues: list[Issue]) -> None:
    """Raise every problem a validator found at once (nothing when there is none)."""
    if issues:
        raise PydanticCustomError("plan", "{count} problems", {"issues": tuple(issues), "count": len(issues)})


def context_of(info: ValidationInfo) -> dict[str, Any]:
    """The validation context parse_plan passes (``base_dir``, ``mode``, ``x_provider``), or an empty one."""
    return info.context if isinstance(info.context, dict) else {}


# ---------------------------------------------------------------------------------------------------
# config.source


def check_source(value: Path, base: Path, root: Path, *, explicit_root: bool) -> Path:
    """The absolute path of config.source once it is a regular file or a decK folder under ``root``."""
    shown = str(value)
    given = value if value.is_absolute() else base / value
    resolved = given.resolve()
    if not resolved.is_relative_to(root):
        link = " (through a symbolic link)" if given.resolve() != Path(os.path.normpath(given)) else ""
        where = "config.allowed_root" if explicit_root else "the plan's folder"
        suggestion = os.path.relpath(resolved.parent, base)
        raise fail(f"is {shown!r}, which leads outside {where} ({root}){link}; expected a file under that folder",
                   hint=f"move the file under {root}, or allow its folder explicitly: config.allowed_root: "
                        f"{suggestion}")
    try:
        st = os.stat(resolved)
    except FileNotFoundError:
        raise fail(f"is {shown!r}, but {resolved} does not exist",
                   hint="paths are relative to the plan file's folder") from None
    except OSError as exc:
        raise fail(f"is {shown!r}, but {resolved} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if stat.S_ISDIR(st.st_mode):
        _check_deck_folder(resolved, shown, root)
        return resolved
    if not stat.S_ISREG(st.st_mode):
        raise fail(f"is {shown!r}, which is {file_kind(st.st_mode)}; expected a regular file (or a decK folder)")
    if not os.access(resolved, os.R_OK):
        raise fail(f"is {shown!r}, but {resolved} is not readable (permission denied)",
                   hint="make the file readable by the user running the harness")
    return resolved


def _check_deck_folder(folder: Path, shown: str, root: Path) -> None:
    found = 0
    entries = 0
    for current, dirs, names in os.walk(folder):
        dirs.sort()
        entries += len(dirs) + len(names)
        if entries > DECK_FOLDER_MAX_ENTRIES:
            raise fail(f"is {shown!r}, a folder of more than {DECK_FOLDER_MAX_ENTRIES:,} entries; expected a decK "
                       "folder of state files")
        for name in sorted(names):
            if not name.lower().endswith(tuple(STATE_FILE_SUFFIXES)):
                continue
            path = Path(current) / name
            resolved = path.resolve()
            inner = f"{shown.rstrip('/')}/{path.relative_to(folder)}"
            if not resolved.is_relative_to(root):
                raise fail(f"is {shown!r}; its file {inner!r} leads outside {root} (a symbolic link); expected "
                           "state files under that folder")
            try:
                st = os.stat(resolved)
            except OSError as exc:
                raise fail(f"is {shown!r}; its file {inner!r} cannot be read "
                           f"({exc.strerror or type(exc).__name__})") from None
            if not stat.S_ISREG(st.st_mode):
                raise fail(f"is {shown!r}; its file {inner!r} is {file_kind(st.st_mode)}; expected regular files")
            found += 1
    if not found:
        raise fail(f"is {shown!r}, a folder with no .yaml, .yml or .json file; expected a declarative config "
                   "file, or a decK folder of state files")


def file_kind(mode: int) -> str:
    """What a path that is not a regular file is, in words (for config.source and the plan file)."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


# ---------------------------------------------------------------------------------------------------
# messages


def show(value: Any) -> str:
    """A bad value as a message shows it: its repr, cut at 80 characters."""
    text = repr(value)
    return f"{text[:80]}..." if len(text) > 80 else text


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or nothing when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def path_text(loc: tuple[str | int, ...]) -> str:
    """A field path as the plan's messages write it: ``traffic.steps[2]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """(the bare type, its Annotated metadata), with ``X | None`` taken as X."""
    metadata: list[Any] = []
    while True:
        if get_origin(annotation) is Annotated:
            base, *extra = get_args(annotation)
            for item in extra:
                metadata.extend(item.metadata if isinstance(item, FieldInfo) else [item])
            annotation = base
            continue
        args = get_args(annotation)
        if args and type(None) in args and get_origin(annotation) is not Literal:
            rest = [a for a in args if a is not type(None)]
            if len(rest) == 1:
                annotation = rest[0]
                continue
        return annotation, metadata


def _describe(root: type[BaseModel], loc: tuple[str | int, ...]) -> tuple[Any, list[Any], type[BaseModel] | None]:
    """The declared type and metadata of the field at ``loc`` below ``root``, and the model that holds it."""
    current: Any = root
    metadata: list[Any] = []
    holder: type[BaseModel] | None = None
    for part in loc:
        current, _ = _unwrap(current)
        if isinstance(part, int):
            args = get_args(current)
            if not args:
                return None, [], holder
            current, metadata = _unwrap(args[0])
            metadata = [*metadata]
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            holder = current
            field = next((f for name, f in current.model_fields.items() if (f.alias or name) == part), None)
            if field is None:
                return None, [], holder
            current, metadata = field.annotation, [*field.metadata]
            _, extra = _unwrap(current)
            metadata.extend(extra)
            continue
        if get_origin(current) is dict:
            current, metadata = _unwrap(get_args(current)[1])
            continue
        return None, [], holder
    bare, extra = _unwrap(current)
    return bare, [*metadata, *extra], holder


def keys_of(model: type[BaseModel]) -> list[str]:
    """The keys a section takes, as written in YAML (aliases included)."""
    return [f.alias or name for name, f in model.model_fields.items()]


def _expected(bare: Any, metadata: list[Any]) -> str:
    words = next((m.text for m in reversed(metadata) if isinstance(m, Expect)), None)
    lo = next((m.ge for m in metadata if isinstance(m, Ge)), None)
    lo_open = next((m.gt for m in metadata if isinstance(m, Gt)), None)
    hi: Any = next((m.le for m in metadata if isinstance(m, Le)), None)
    hi = hi if hi is not None else next((m.lt for m in metadata if isinstance(m, Lt)), None)
    if get_origin(bare) is Literal:
        return "one of: " + ", ".join(str(a) for a in get_args(bare))
    if bare is bool:
        return "true or false"
    if bare in (int, float):
        noun = words or ("a whole number" if bare is int else "a number")
        if lo_open is not None:
            return f"{noun} more than {lo_open:g} to {hi:g}" if hi is not None else f"{noun} more than {lo_open:g}"
        if lo is not None and hi is not None:
            return f"{noun} from {lo:g} to {hi:g}"
        return noun
    if words:
        return words
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return "a mapping with keys: " + ", ".join(keys_of(bare))
    if get_origin(bare) is tuple:
        return "a list"
    if get_origin(bare) is dict:
        return "a mapping"
    return "a string" if bare is str else "a valid value"


_TYPE_ERRORS = {"int_type", "int_parsing", "int_from_float", "float_type", "float_parsing", "bool_type",
                "bool_parsing", "string_type", "greater_than", "greater_than_equal", "less_than",
                "less_than_equal", "string_pattern_mismatch", "string_too_long", "string_too_short",
                "finite_number", "path_type", "union_tag_invalid", "too_long", "too_short", "is_instance_of",
                "literal_error", "dict_type", "tuple_type", "list_type", "model_type", "model_attributes_type",
                "enum"}


def issue_lines(exc: ValidationError, secret_paths: set[str], root: type[BaseModel]) -> list[tuple[str, str | None]]:
    """One line (and a hint) per problem in ``exc``, a validation of ``root``; fields in ``secret_paths`` are
    already reported (their values are never shown)."""
    out: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if isinstance(p, int | str))
        kind = error["type"]
        ctx = error.get("ctx") or {}
        if kind == "plan":
            for at, text, hint in ctx.get("issues", ()):
                full = path_text((*loc, *at))
                here = path_text(loc[:-1] if at == () and loc else loc) or "the plan"
                text, hint = text.replace("{here}", here), hint.replace("{here}", here) if hint else hint
                sep = "" if text[:1] in (":", ",", ";") else " "
                out.append((f"{full}{sep}{text}" if full else text, hint))
            continue
        path = path_text(loc)
        # str | bool | int | float unions report per member; keep one line per field
        if loc and isinstance(loc[-1], str) and loc[-1] in ("str", "bool", "int", "float"):
            loc = loc[:-1]
            path = path_text(loc)
        if path in secret_paths or path in seen:
            continue
        value = error.get("input")
        if kind == "extra_forbidden":
            holder = _describe(root, loc[:-1])[0] if len(loc) > 1 else root
            valid = keys_of(holder) if isinstance(holder, type) and issubclass(holder, BaseModel) else []
            key = str(loc[-1])
            out.append((f"{path}: unknown key {key!r}" + did_you_mean(key, valid),
                        f"valid keys under {path_text(loc[:-1]) or 'the top level'}: {', '.join(valid)}"))
            seen.add(path)
            continue
        bare, metadata, holder = _describe(root, loc)
        if kind == "missing":
            out.append((f"{path} is missing; expected {_expected(bare, metadata)}", None))
        elif kind in ("model_type", "model_attributes_type", "dict_type") and isinstance(bare, type) and \
                issubclass(bare, BaseModel):
            out.append((f"{path or 'the plan'} must be a mapping of keys, got {show(value)}",
                        f"valid keys: {', '.join(keys_of(bare))}"))
        elif kind == "literal_error" and get_origin(bare) is Literal:
            choices = [str(a) for a in get_args(bare)]
            out.append((f"{path} is {show(value)}; expected one of: {', '.join(choices)}"
                        + (did_you_mean(value, choices) if isinstance(value, str) else ""), None))
        elif kind in _TYPE_ERRORS or bare is not None:
            out.append((f"{path} is {show(value)}; expected {_expected(bare, metadata)}", None))
        else:
            out.append((f"{path}: {error['msg']}", None))
        seen.add(path)
    return out

