"""The vendor's TypeScript SDK (``@mywebapi.com/sdk``) read at test time: ``npm pack`` it, parse its ``.d.ts``
declarations, and check JSON values against the TypeScript types they declare.

The parser covers the subset the SDK's declarations use (interfaces with optional/readonly members, type aliases,
string/number literal unions, ``| null``, arrays, references across ``import``s, orval's enum pattern
``type X = typeof X[keyof typeof X]`` + ``declare const X: {readonly A: "A"}``, ``declare class`` with methods and
function-typed parameters, simple generics). Anything outside it raises :class:`DtsError` naming the file and
position, so a changed SDK breaks the test loudly instead of being read wrongly.

The hub target strings (``"SubscribeToTicks"``...) are not in the ``.d.ts`` (it declares the wrapper's camelCase
methods); :func:`hub_clients` reads them from the same method's body in the package's compiled JS.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TS_SDK = "@mywebapi.com/sdk@0.2.1"  # the version the reference (webapi-reference.md) was written against


class DtsError(Exception):
    """The declaration text is outside the subset this parser understands."""


class SdkUnavailable(Exception):
    """npm is missing or the registry did not answer: the caller skips."""


def npm_pack(dest: Path, spec: str = TS_SDK) -> Path:
    """``npm pack spec`` into ``dest`` and unpack it; returns the package directory (``dest/package``)."""
    if shutil.which("npm") is None:
        raise SdkUnavailable("npm is not installed")
    dest.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        # --prefer-offline: a tarball already in npm's cache is used without asking the registry.
        ["npm", "pack", spec, "--json", "--prefer-offline", "--pack-destination", str(dest), "--loglevel=error"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    if done.returncode != 0:
        first = " / ".join(done.stderr.strip().splitlines()[:2])[:300]
        raise SdkUnavailable(f"npm pack {spec} failed (registry unreachable?): {first}")
    (info,) = json.loads(done.stdout)
    with tarfile.open(dest / info["filename"]) as tar:
        tar.extractall(dest, filter="data")
    package = dest / "package"
    name, _, version = spec.rpartition("@")
    meta = json.loads((package / "package.json").read_text())
    if (meta["name"], meta["version"]) != (name, version):
        raise DtsError(f"npm pack {spec} unpacked {meta['name']}@{meta['version']}")
    return package


# --------------------------------------------------------------------------- type model


@dataclass(frozen=True)
class Prim:
    name: str  # string number boolean null undefined void unknown any never object bigint


@dataclass(frozen=True)
class Lit:
    value: str | float | bool


@dataclass(frozen=True)
class Ref:
    name: str  # possibly dotted (``signalR.HubConnection``)
    args: tuple[Type, ...] = ()


@dataclass(frozen=True)
class Arr:
    item: Type


@dataclass(frozen=True)
class Union:
    options: tuple[Type, ...]


@dataclass(frozen=True)
class Inter:
    parts: tuple[Type, ...]


@dataclass(frozen=True)
class Param:
    name: str
    type: Type
    optional: bool = False
    rest: bool = False


@dataclass(frozen=True)
class Func:
    params: tuple[Param, ...]
    ret: Type


@dataclass(frozen=True)
class TypeQuery:  # ``typeof X``
    name: str


@dataclass(frozen=True)
class KeyOf:
    type: Type


@dataclass(frozen=True)
class Indexed:  # ``T[K]``
    obj: Type
    index: Type


@dataclass(frozen=True)
class Prop:
    name: str
    type: Type
    optional: bool = False


@dataclass(frozen=True)
class MethodSig:
    name: str
    params: tuple[Param, ...]
    ret: Type


@dataclass(frozen=True)
class Obj:
    props: tuple[Prop, ...] = ()
    methods: tuple[MethodSig, ...] = ()
    index: Type | None = None  # ``[key: string]: T``


Type = Prim | Lit | Ref | Arr | Union | Inter | Func | TypeQuery | KeyOf | Indexed | Obj

PRIMS = frozenset({"string", "number", "boolean", "null", "undefined", "void", "unknown", "any", "never", "object"})
MODIFIERS = frozenset({"readonly", "private", "protected", "public", "static", "declare", "abstract", "async"})


@dataclass(frozen=True)
class Interface:
    name: str
    extends: tuple[Ref, ...]
    body: Obj


@dataclass(frozen=True)
class Alias:
    name: str
    type: Type


@dataclass(frozen=True)
class Const:
    name: str
    type: Type


@dataclass(frozen=True)
class ClassDecl:
    name: str
    body: Obj  # public members only


Decl = Interface | Alias | Const | ClassDecl


@dataclass
class Module:
    path: Path
    decls: dict[str, Decl] = field(default_factory=dict)  # types (interfaces, aliases, classes)
    values: dict[str, Const] = field(default_factory=dict)  # TS keeps values apart: ``type X`` + ``const X``
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # local name -> (specifier, exported name)


# --------------------------------------------------------------------------- tokenizer + parser

_TOKEN = re.compile(
    r"""(?P<ws>\s+)|(?P<comment>/\*.*?\*/|//[^\n]*)|(?P<str>'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")"""
    r"""|(?P<num>-?\d+(?:\.\d+)?)|(?P<id>[A-Za-z_$][\w$]*)|(?P<punct>=>|\.\.\.|[{}()\[\]<>;:,?|&=.*])""",
    re.S,
)


def tokenize(text: str, where: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise DtsError(f"{where}: unexpected character {text[pos]!r} at offset {pos}")
        kind = m.lastgroup or ""
        if kind not in ("ws", "comment"):
            out.append((kind, m.group(), pos))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, where: str) -> None:
        self.where = where
        self.toks = tokenize(text, where)
        self.i = 0

    # -- cursor
    def peek(self, ahead: int = 0) -> str:
        j = self.i + ahead
        return self.toks[j][1] if j < len(self.toks) else ""

    def kind(self, ahead: int = 0) -> str:
        j = self.i + ahead
        return self.toks[j][0] if j < len(self.toks) else ""

    def fail(self, what: str) -> DtsError:
        pos = self.toks[self.i][2] if self.i < len(self.toks) else -1
        return DtsError(f"{self.where}: {what} at offset {pos} (token {self.peek()!r})")

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if not tok or (expected is not None and tok != expected):
            raise self.fail(f"expected {expected!r}")
        self.i += 1
        return tok

    def accept(self, tok: str) -> bool:
        if self.peek() == tok:
            self.i += 1
            return True
        return False

    def ident(self) -> str:
        if self.kind() != "id":
            raise self.fail("expected an identifier")
        return self.take()

    # -- statements
    def module(self, path: Path) -> Module:
        mod = Module(path)
        while self.i < len(self.toks):
            self.statement(mod)
        return mod

    def statement(self, mod: Module) -> None:
        if self.accept(";"):
            return
        if self.peek() == "import":
            self.import_(mod)
            return
        exported = self.accept("export")
        if exported and (self.peek() in ("{", "*") or (self.peek() == "type" and self.peek(1) == "{")):
            self.skip_statement()  # a re-export (``export { X } from './x'``): declarations live in that file
            return
        self.accept("declare")
        word = self.take()
        if word == "interface":
            name = self.ident()
            self.generics_not_supported(name)
            extends: list[Ref] = []
            if self.accept("extends"):
                extends.append(self.ref())
                while self.accept(","):
                    extends.append(self.ref())
            mod.decls[name] = Interface(name, tuple(extends), self.object_body())
        elif word == "type":
            name = self.ident()
            self.generics_not_supported(name)
            self.take("=")
            mod.decls[name] = Alias(name, self.type_())
            self.accept(";")
        elif word == "const":
            name = self.ident()
            self.take(":")
            mod.values[name] = Const(name, self.type_())
            self.accept(";")
        elif word == "class":
            name = self.ident()
            self.generics_not_supported(name)
            if self.accept("extends"):
                self.ref()
            mod.decls[name] = ClassDecl(name, self.object_body())
        elif word == "function":
            self.skip_statement()
        else:
            raise self.fail(f"unsupported declaration {word!r}")

    def generics_not_supported(self, name: str) -> None:
        if self.peek() == "<":
            raise self.fail(f"generic declaration {name} is not supported")

    def import_(self, mod: Module) -> None:
        self.take("import")
        self.accept("type")
        names: list[tuple[str, str]] = []
        if self.accept("{"):
            while not self.accept("}"):
                self.accept("type")
                exported = self.ident()
                local = self.ident() if self.accept("as") else exported
                names.append((local, exported))
                self.accept(",")
        elif self.accept("*"):
            self.take("as")
            self.ident()  # namespace import: members are reached as ``ns.X`` (left unresolved)
        else:
            self.ident()  # default import
        self.take("from")
        specifier = self.take()[1:-1]
        self.accept(";")
        for local, exported in names:
            mod.imports[local] = (specifier, exported)

    def skip_statement(self) -> None:
        depth = 0
        while self.i < len(self.toks):
            tok = self.take()
            if tok in ("(", "{", "["):
                depth += 1
            elif tok in (")", "}", "]"):
                depth -= 1
            if depth == 0 and tok == ";":
                return

    # -- object / class bodies
    def object_body(self) -> Obj:
        self.take("{")
        props: list[Prop] = []
        methods: list[MethodSig] = []
        index: Type | None = None
        while not self.accept("}"):
            if self.accept(";") or self.accept(","):
                continue
            mods: set[str] = set()
            accessor = ""
            while True:
                nxt = self.peek(1)
                starts_member = self.kind(1) == "id" or nxt == "["
                if self.peek() in MODIFIERS and starts_member:
                    mods.add(self.take())
                elif self.peek() in ("get", "set") and starts_member:
                    accessor = self.take()
                else:
                    break
            if self.peek() == "[":
                self.take("[")
                self.ident()
                self.take(":")
                self.type_()
                self.take("]")
                self.take(":")
                index = self.type_()
                continue
            name = self.take()
            if self.kind(-1) not in ("id", "str", "num"):
                raise self.fail("expected a member name")
            name = name.strip("'\"")
            optional = self.accept("?")
            hidden = "private" in mods or "protected" in mods
            if self.peek() in ("(", "<"):
                if self.peek() == "<":
                    raise self.fail(f"generic method {name} is not supported")
                params = self.params()
                ret: Type = self.type_() if self.accept(":") else Prim("any")
                if accessor == "get":
                    if not hidden:
                        props.append(Prop(name, ret, optional))
                elif not hidden and name != "constructor":
                    methods.append(MethodSig(name, params, ret))
                continue
            tp: Type = self.type_() if self.accept(":") else Prim("any")
            if not hidden:
                props.append(Prop(name, tp, optional))
        return Obj(tuple(props), tuple(methods), index)

    def params(self) -> tuple[Param, ...]:
        self.take("(")
        out: list[Param] = []
        while not self.accept(")"):
            rest = self.accept("...")
            self.accept("readonly")
            name = self.ident()
            optional = self.accept("?")
            tp = self.type_() if self.accept(":") else Prim("any")
            if name != "this":
                out.append(Param(name, tp, optional, rest))
            self.accept(",")
        return tuple(out)

    # -- types
    def type_(self) -> Type:
        self.accept("|")  # a leading bar (multi-line unions)
        options = [self.intersection()]
        while self.accept("|"):
            options.append(self.intersection())
        return options[0] if len(options) == 1 else Union(tuple(options))

    def intersection(self) -> Type:
        self.accept("&")
        parts = [self.postfix()]
        while self.accept("&"):
            parts.append(self.postfix())
        return parts[0] if len(parts) == 1 else Inter(tuple(parts))

    def postfix(self) -> Type:
        tp = self.primary()
        while self.peek() == "[":
            self.take("[")
            if self.accept("]"):
                tp = Arr(tp)
            else:
                tp = Indexed(tp, self.type_())
                self.take("]")
        return tp

    def primary(self) -> Type:
        tok, kind = self.peek(), self.kind()
        if tok == "(":
            start = self.i
            try:
                params = self.params()
                self.take("=>")
                return Func(params, self.type_())
            except DtsError:
                self.i = start  # not a function type: a parenthesised type
            self.take("(")
            inner = self.type_()
            self.take(")")
            return inner
        if tok == "{":
            return self.object_body()
        if kind == "str":
            self.take()
            return Lit(json.loads('"' + tok[1:-1].replace('"', '\\"') + '"') if tok[0] == "'" else json.loads(tok))
        if kind == "num":
            self.take()
            return Lit(float(tok))
        if tok in ("true", "false"):
            self.take()
            return Lit(tok == "true")
        if tok == "typeof":
            self.take()
            return TypeQuery(self.dotted())
        if tok == "keyof":
            self.take()
            return KeyOf(self.postfix())
        if tok in PRIMS:
            self.take()
            return Prim(tok)
        if kind == "id":
            return self.ref()
        raise self.fail("expected a type")

    def dotted(self) -> str:
        name = self.ident()
        while self.accept("."):
            name += "." + self.ident()
        return name

    def ref(self) -> Ref:
        name = self.dotted()
        args: list[Type] = []
        if self.accept("<"):
            args.append(self.type_())
            while self.accept(","):
                args.append(self.type_())
            self.take(">")
        return Ref(name, tuple(args))


def parse_dts(path: Path) -> Module:
    return _Parser(path.read_text(encoding="utf-8"), str(path)).module(path)


# --------------------------------------------------------------------------- a package of modules


class Package:
    """The ``.d.ts`` modules of an unpacked package, parsed on demand; names resolved through imports."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._modules: dict[Path, Module] = {}

    def module(self, path: Path) -> Module:
        path = path.resolve()
        if path not in self._modules:
            self._modules[path] = parse_dts(path)
        return self._modules[path]

    def _module_file(self, base: Path, specifier: str) -> Path | None:
        if not specifier.startswith("."):
            return None  # another package (``@microsoft/signalr``): not part of the payload contract
        target = (base.parent / specifier).resolve()
        for candidate in (target.with_name(target.name + ".d.ts"), target / "index.d.ts"):
            if candidate.is_file():
                return candidate
        raise DtsError(f"{base}: import {specifier!r} has no .d.ts file")

    def resolve(self, mod: Module, name: str, value: bool = False) -> tuple[Module, Decl]:
        """The declaration of type ``name`` (of value ``name`` with ``value``) seen from ``mod``."""
        own: dict[str, Any] = mod.values if value else mod.decls
        if name in own:
            return mod, own[name]
        if name in mod.imports:
            specifier, exported = mod.imports[name]
            file = self._module_file(mod.path, specifier)
            if file is not None:
                return self.resolve(self.module(file), exported, value)
        raise DtsError(f"{mod.path.name}: cannot resolve {'value' if value else 'type'} {name!r}")


# --------------------------------------------------------------------------- JSON values against TS types


@dataclass(frozen=True)
class Checker:
    """``problems(value, type, module, where)``: what in a JSON value does not fit a declared TS type."""

    package: Package

    def problems(self, value: Any, tp: Type, mod: Module, where: str) -> list[str]:
        if isinstance(tp, Prim):
            return self._prim(value, tp.name, where)
        if isinstance(tp, Lit):
            same = value == tp.value and isinstance(value, bool) == isinstance(tp.value, bool)
            return [] if same else [f"{where}: {value!r} is not {tp.value!r}"]
        if isinstance(tp, Union):
            tried = [self.problems(value, o, mod, where) for o in tp.options]
            if any(not p for p in tried):
                return []
            literals = [o.value for o in tp.options if isinstance(o, Lit)]
            if literals and len(literals) == len(tp.options):
                return [f"{where}: {value!r} is not one of {literals}"]
            return min(tried, key=len)
        if isinstance(tp, Arr):
            if not isinstance(value, list):
                return [f"{where}: {_json_type(value)}, the SDK says array"]
            return [p for n, v in enumerate(value) for p in self.problems(v, tp.item, mod, f"{where}[{n}]")]
        if isinstance(tp, Obj):
            return self._object(value, tp, (), mod, where, "object")
        if isinstance(tp, Inter):
            raise DtsError(f"{where}: intersection types are not checked")
        if isinstance(tp, Indexed):
            return self.problems(value, self.enum_union(tp, mod), mod, where)
        if isinstance(tp, Ref):
            return self._ref(value, tp, mod, where)
        raise DtsError(f"{where}: cannot check a value against {tp!r}")

    def _prim(self, value: Any, name: str, where: str) -> list[str]:
        ok = {
            "string": lambda v: isinstance(v, str),
            "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "boolean": lambda v: isinstance(v, bool),
            "null": lambda v: v is None,
            "object": lambda v: isinstance(v, dict | list),
            "unknown": lambda v: True,
            "any": lambda v: True,
        }.get(name)
        if ok is None:
            raise DtsError(f"{where}: a JSON value cannot be checked against {name}")
        if ok(value):
            return []
        if value is None:
            return [f"{where}: null, the SDK does not allow null"]
        return [f"{where}: {_json_type(value)} {value!r}, the SDK says {name}"]

    def _ref(self, value: Any, ref: Ref, mod: Module, where: str) -> list[str]:
        if ref.name in ("Array", "ReadonlyArray") and len(ref.args) == 1:
            return self.problems(value, Arr(ref.args[0]), mod, where)
        if ref.name == "Record" and len(ref.args) == 2:
            return self.problems(value, Obj(index=ref.args[1]), mod, where)
        if ref.args:
            raise DtsError(f"{where}: generic type {ref.name} is not checked")
        owner, decl = self.package.resolve(mod, ref.name)
        if isinstance(decl, Alias):
            return self.problems(value, decl.type, owner, where)
        if isinstance(decl, Interface):
            return self._object(value, decl.body, decl.extends, owner, where, decl.name)
        raise DtsError(f"{where}: {ref.name} is a {type(decl).__name__}, not a data type")

    def members(self, body: Obj, extends: tuple[Ref, ...], mod: Module) -> dict[str, Prop]:
        out: dict[str, Prop] = {}
        for base in extends:
            owner, decl = self.package.resolve(mod, base.name)
            if not isinstance(decl, Interface):
                raise DtsError(f"{mod.path.name}: extends {base.name}, not an interface")
            out.update(self.members(decl.body, decl.extends, owner))
        out.update({p.name: p for p in body.props})
        return out

    def _object(self, value: Any, body: Obj, extends: tuple[Ref, ...], mod: Module, where: str, name: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where}: {_json_type(value)}, the SDK says {name} object"]
        if body.methods:
            raise DtsError(f"{where}: {name} has methods: not a data type")
        members = self.members(body, extends, mod)
        out: list[str] = []
        for key, item in value.items():
            prop = members.get(key)
            if prop is not None:
                out += self.problems(item, prop.type, mod, f"{where}.{key}")
            elif body.index is not None:
                out += self.problems(item, body.index, mod, f"{where}.{key}")
            else:
                out.append(f"{where}: {key} is served but not in {name}")
        out += [f"{where}: {name}.{k} is not served" for k, p in members.items() if not p.optional and k not in value]
        return out

    def enum_union(self, tp: Indexed, mod: Module) -> Union:
        """orval's ``typeof X[keyof typeof X]``: the union of the literal values of ``declare const X``."""
        if not (isinstance(tp.obj, TypeQuery) and tp.index == KeyOf(TypeQuery(tp.obj.name))):
            raise DtsError(f"{mod.path.name}: indexed access {tp!r} is not the enum pattern")
        owner, decl = self.package.resolve(mod, tp.obj.name, value=True)
        if not (isinstance(decl, Const) and isinstance(decl.type, Obj)):
            raise DtsError(f"{owner.path.name}: {tp.obj.name} is not a const object")
        return Union(tuple(p.type for p in decl.type.props))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", str: "string", int: "number", float: "number", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


# --------------------------------------------------------------------------- the SDK's hub clients


@dataclass(frozen=True)
class HubCall:
    """One hub method of an SDK client: wire ``target``, its wrapper ``method`` (``.d.ts``), how it is called
    (``on`` = server event, ``invoke``, ``stream``), the parameters and the payload type (event argument / stream
    item / invocation result)."""

    kind: str
    target: str
    method: str
    params: tuple[Param, ...]
    payload: Type

    @property
    def arity(self) -> tuple[int, int]:
        if any(p.rest for p in self.params):
            raise DtsError(f"{self.method}: rest parameters are not supported")
        return sum(not p.optional for p in self.params), len(self.params)


@dataclass(frozen=True)
class HubClient:
    name: str  # the .d.ts class
    path: str  # the hub path the client connects to by default
    module: Module
    calls: tuple[HubCall, ...]


_JS_CLASS = re.compile(r"^class (\w+) \{\n(.*?)^\}", re.S | re.M)
_JS_METHOD = re.compile(r"^  (?:async |get |set |static )*(\w+)\(", re.M)
_JS_HUB_CALL = re.compile(r"\.(on|invoke|stream)\(\"(\w+)\"")
_JS_HUB_PATH = re.compile(r"`\$\{\w+\}(/hubs/[\w/]+)`")


def _js_methods(body: str) -> dict[str, str]:
    starts = list(_JS_METHOD.finditer(body))
    return {m.group(1): body[m.start() : (starts[n + 1].start() if n + 1 < len(starts) else len(body))]
            for n, m in enumerate(starts)}  # fmt: skip


def _payload_of(method: MethodSig, kind: str) -> Type:
    if kind == "on":
        (handler,) = method.params
        if not isinstance(handler.type, Func) or len(handler.type.params) != 1:
            raise DtsError(f"{method.name}: an event handler taking one payload was expected")
        return handler.type.params[0].type
    ret = method.ret
    if kind == "stream":
        if not (isinstance(ret, Ref) and ret.name == "AsyncIterable" and len(ret.args) == 1):
            raise DtsError(f"{method.name}: a stream returning AsyncIterable<T> was expected")
        return ret.args[0]
    if not (isinstance(ret, Ref) and ret.name == "Promise" and len(ret.args) == 1):
        raise DtsError(f"{method.name}: an invocation returning Promise<T> was expected")
    return ret.args[0]


def hub_clients(package_dir: Path) -> list[HubClient]:
    """Every exported ``*SignalRClient`` class of the package's ``signalr*.d.ts``, with its hub calls.

    A public ``.d.ts`` method is a hub call when its compiled JS body calls the connection's ``on``, ``invoke`` or
    ``stream`` with a string target; every such JS call must belong to a declared method (``start``'s no-op
    ``OnConnectionStatus`` registration belongs to the ``onConnectionStatus`` event, which must then be declared)."""
    dist = package_dir / "dist"
    js_classes = {m.group(1): m.group(2) for m in _JS_CLASS.finditer((dist / "node" / "index.js").read_text())}
    package = Package(package_dir)
    clients: list[HubClient] = []
    for file in sorted(dist.glob("signalr*.d.ts")):
        mod = package.module(file)
        for decl in mod.decls.values():
            if not (isinstance(decl, ClassDecl) and decl.name.endswith("SignalRClient")):
                continue
            if decl.name not in js_classes:
                raise DtsError(f"{decl.name}: no compiled class in dist/node/index.js")
            js = js_classes[decl.name]
            paths = set(_JS_HUB_PATH.findall(js))
            if len(paths) != 1:
                raise DtsError(f"{decl.name}: expected one default hub path in its JS, found {sorted(paths)}")
            bodies = _js_methods(js)
            calls: list[HubCall] = []
            for method in decl.body.methods:
                found = _JS_HUB_CALL.findall(bodies.get(method.name, ""))
                if len(found) != 1:
                    continue  # lifecycle (start/stop/...): not a hub call
                ((kind, target),) = found
                if kind == "on" and not any(isinstance(p.type, Func) for p in method.params):
                    continue  # ``start()`` registers a no-op OnConnectionStatus handler: not the event's wrapper
                calls.append(HubCall(kind, target, method.name, _wire_params(method, kind), _payload_of(method, kind)))
            declared = {(c.kind, c.target) for c in calls}
            in_js = set(_JS_HUB_CALL.findall(js))
            if in_js - declared:
                raise DtsError(f"{decl.name}: JS hub calls {sorted(in_js - declared)} have no declared method")
            clients.append(HubClient(decl.name, paths.pop(), mod, tuple(calls)))
    return clients


def _wire_params(method: MethodSig, kind: str) -> tuple[Param, ...]:
    """The hub arguments: the wrapper's parameters, except an event's handler (the payload is the argument)."""
    return () if kind == "on" else method.params
