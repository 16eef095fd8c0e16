"""ValueChoice: choose one value from a list, and lazy arithmetic over such choices.

``ValueChoice([16, 32])`` is a leaf with a label; ``round(vc * 1.5)`` or
``ValueChoice.max(a, b)`` build an expression (``ValueChoiceX``) evaluated only once the
leaves are decided. Expressions go wherever a basic unit takes a number. Inside
``fixed_arch`` a ``ValueChoice`` is the chosen value itself, and the static helpers
compute at once on plain values, so space code works unchanged in both modes.
"""

from __future__ import annotations

import builtins
import itertools
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from supernet.context import auto_label
from supernet.primitives.base import Choice, FixableMeta, as_declared, lookup_fixed, same_sequence

__all__ = ["ValueChoice", "ValueChoiceX", "as_declared", "contains_choice", "evaluate_nested", "leaf_choices",
           "same_sequence"]


def _check_prior(prior: Sequence[float] | None, n: int, what: str) -> list[float] | None:
    if prior is None:
        return None
    prior = [float(p) for p in prior]
    if len(prior) != n:
        raise ValueError(f"{what}: prior has {len(prior)} entries but there are {n} candidates")
    if any(p < 0 for p in prior) or not math.isclose(sum(prior), 1.0, rel_tol=1e-4, abs_tol=1e-6):
        raise ValueError(f"{what}: prior must be non-negative and sum to 1, got {prior}")
    return prior


class ValueChoiceX:
    """A lazy expression over one or more :class:`ValueChoice` leaves."""

    def __init__(self, function: Callable[..., Any], template: str, arguments: Sequence[Any]) -> None:
        self.function = function
        self.template = template
        self.arguments = list(arguments)

    # -- inspection ---------------------------------------------------------------------------
    def inner_choices(self) -> list[ValueChoice]:
        """The distinct leaves (one per label) this expression depends on, in order of appearance."""
        return leaf_choices(self)

    def evaluate(self, values: Sequence[Any]) -> Any:
        """The expression's value with ``values`` given to :meth:`inner_choices` in order."""
        leaves = self.inner_choices()
        if len(values) != len(leaves):
            raise ValueError(f"evaluate() needs {len(leaves)} values (for {[c.label for c in leaves]}), "
                             f"got {len(values)}")
        return self.evaluate_with({c.label: v for c, v in zip(leaves, values)})

    def evaluate_with(self, values: Mapping[str, Any]) -> Any:
        """The expression's value with leaves looked up by label in ``values``."""
        args = [a.evaluate_with(values) if isinstance(a, ValueChoiceX) else evaluate_nested(a, values)
                for a in self.arguments]
        return self.function(*args)

    def default(self) -> Any:
        """The value with every leaf at its default (first) candidate."""
        return self.evaluate_with({c.label: c.candidates[0] for c in self.inner_choices()})

    def all_options(self) -> list[Any]:
        """Every distinct value the expression can take, in order of first appearance."""
        leaves = self.inner_choices()
        results: list[Any] = []
        for values in itertools.product(*(c.candidates for c in leaves)):
            value = self.evaluate(values)
            if not any(value == r and type(value) is type(r) for r in results):
                results.append(value)
        return results

    def __call__(self) -> Any:
        """The current value: what the running supernet samples, else the default."""
        values = {c.label: c.current if c.current is not None else c.candidates[0] for c in self.inner_choices()}
        return self.evaluate_with(values)

    def __repr__(self) -> str:
        """One line, leaves by label: ``ValueChoiceX((a + b) * 2)``; past ~80 characters the
        formula is cut with ``...`` and the labels are listed."""
        text = self._symbolic()
        if _wrapped(self):
            text = text[1:-1]  # the outermost parentheses say nothing
        if len(text) <= _REPR_LIMIT:
            return f"ValueChoiceX({text})"
        labels = [c.label for c in self.inner_choices()]
        shown = repr(labels) if len(labels) <= 6 else repr(labels[:6])[:-1] + f", ... ({len(labels)} in all)]"
        return f"ValueChoiceX({text[:_REPR_LIMIT - 3]}..., labels={shown})"

    def _symbolic(self) -> str:
        texts = [_symbol(a) for a in self.arguments]
        if _CALL.match(self.template):  # f((a + b)) reads f(a + b)
            texts = [t[1:-1] if _wrapped(a) else t for a, t in zip(self.arguments, texts)]
        elif _precedence(self) is not None:  # (a * b) + c reads a * b + c, as Python would parse it
            mine = _precedence(self)
            for i, (a, t) in enumerate(zip(self.arguments, texts)):
                theirs = _precedence(a)
                if theirs is not None and (theirs > mine or theirs == mine and i == 0 and 0 < mine < 7):
                    texts[i] = t[1:-1]
        return self.template.format(*texts)

    # -- no implicit conversion: a choice has no value yet ------------------------------------
    def __bool__(self) -> bool:
        raise TypeError(f"{self!r} has no truth value before it is chosen; use ValueChoice.condition(...) "
                        "for a lazy if/else")

    def _no_conversion(self, *args: Any) -> Any:
        raise TypeError(f"{self!r} cannot be converted to a number before it is chosen; use "
                        "ValueChoice.to_int / to_float (lazy), nn.Repeat for a variable depth, or "
                        "nn.ModelParameterChoice for a plain value")

    __int__ = __float__ = __index__ = __complex__ = _no_conversion  # type: ignore[assignment]
    __hash__ = object.__hash__

    # -- static helpers (work on plain values too) ---------------------------------------------
    @staticmethod
    def to_int(obj: Any) -> Any:
        """``int(obj)``, lazily if ``obj`` holds a choice."""
        return _apply(int, "int({})", [obj])

    @staticmethod
    def to_float(obj: Any) -> Any:
        """``float(obj)``, lazily if ``obj`` holds a choice."""
        return _apply(float, "float({})", [obj])

    @staticmethod
    def max(arg0: Any, *args: Any) -> Any:
        """``max`` of an iterable or of several arguments, lazily if any holds a choice."""
        if not args and isinstance(arg0, ValueChoiceX):  # a list-valued choice: max of its value
            return ValueChoiceX(builtins.max, "max({})", [arg0])
        items = list(arg0) if not args else [arg0, *args]
        return _apply(_max_of, "max(" + ", ".join(["{}"] * len(items)) + ")", items)

    @staticmethod
    def min(arg0: Any, *args: Any) -> Any:
        """``min`` of an iterable or of several arguments, lazily if any holds a choice."""
        if not args and isinstance(arg0, ValueChoiceX):
            return ValueChoiceX(builtins.min, "min({})", [arg0])
        items = list(arg0) if not args else [arg0, *args]
        return _apply(_min_of, "min(" + ", ".join(["{}"] * len(items)) + ")", items)

    @staticmethod
    def condition(pred: Any, true: Any, false: Any) -> Any:
        """``true if pred else false``, lazily if any argument holds a choice."""
        return _apply(_if_else, "({1} if {0} else {2})", [pred, true, false])

    cond = condition

    # -- operators ------------------------------------------------------------------------------
    def __round__(self, ndigits: int | None = None) -> ValueChoiceX:
        if ndigits is None:
            return ValueChoiceX(round, "round({})", [self])
        return ValueChoiceX(round, "round({}, {})", [self, ndigits])

    def __trunc__(self) -> ValueChoiceX:
        return ValueChoiceX(math.trunc, "math.trunc({})", [self])

    def __floor__(self) -> ValueChoiceX:
        return ValueChoiceX(math.floor, "math.floor({})", [self])

    def __ceil__(self) -> ValueChoiceX:
        return ValueChoiceX(math.ceil, "math.ceil({})", [self])

    def __abs__(self) -> ValueChoiceX:
        return ValueChoiceX(abs, "abs({})", [self])

    def __neg__(self) -> ValueChoiceX:
        return ValueChoiceX(operator.neg, "-{}", [self])

    def __pos__(self) -> ValueChoiceX:
        return ValueChoiceX(operator.pos, "+{}", [self])

    def __invert__(self) -> ValueChoiceX:
        # bitwise, as the reference toolkit's ValueChoiceX.__invert__ (operator.invert): ~2 == -3
        return ValueChoiceX(operator.invert, "~{}", [self])

    def __getitem__(self, key: Any) -> ValueChoiceX:
        return ValueChoiceX(operator.getitem, "{}[{}]", [self, key])

    def __iter__(self) -> Any:
        # without this, iter() would fall back on __getitem__ and never stop
        raise TypeError(f"{self!r} has no items before it is chosen; index it (x[0] is lazy) or use "
                        "ValueChoice.max / min")


def _binary(fn: Callable[[Any, Any], Any], symbol: str) -> tuple[Callable, Callable]:
    def forward(self: ValueChoiceX, other: Any) -> ValueChoiceX:
        return ValueChoiceX(fn, "({} " + symbol + " {})", [self, other])

    def reverse(self: ValueChoiceX, other: Any) -> ValueChoiceX:
        return ValueChoiceX(fn, "({} " + symbol + " {})", [other, self])

    return forward, reverse


for _name, _fn, _sym in [
    ("add", operator.add, "+"), ("sub", operator.sub, "-"), ("mul", operator.mul, "*"),
    ("truediv", operator.truediv, "/"), ("floordiv", operator.floordiv, "//"), ("mod", operator.mod, "%"),
    ("pow", operator.pow, "**"), ("and", operator.and_, "&"), ("or", operator.or_, "|"),
    ("xor", operator.xor, "^"),
]:
    _f, _r = _binary(_fn, _sym)
    setattr(ValueChoiceX, f"__{_name}__", _f)
    setattr(ValueChoiceX, f"__r{_name}__", _r)

for _name, _fn, _sym in [
    ("lt", operator.lt, "<"), ("le", operator.le, "<="), ("gt", operator.gt, ">"),
    ("ge", operator.ge, ">="), ("eq", operator.eq, "=="), ("ne", operator.ne, "!="),
]:
    setattr(ValueChoiceX, f"__{_name}__", _binary(_fn, _sym)[0])


# the functions an expression keeps are module-level, so expressions (and the spaces holding them) pickle
def _max_of(*xs: Any) -> Any:
    return builtins.max(xs)


def _min_of(*xs: Any) -> Any:
    return builtins.min(xs)


def _if_else(pred: Any, true: Any, false: Any) -> Any:
    return true if pred else false


def _identity(x: Any) -> Any:
    return x


_REPR_LIMIT = 80
_CALL = re.compile(r"^[\w.]+\(.*\)$")  # a function call's template: round({}), max({}, {})
_BINARY = re.compile(r"^\(\{\} (\S+) \{\}\)$")  # a binary operator's template: ({} + {})
_PRECEDENCE = {"**": 7, "*": 5, "/": 5, "//": 5, "%": 5, "+": 4, "-": 4, "&": 3, "^": 2, "|": 1}


def _precedence(obj: Any) -> int | None:
    """A binary expression's operator precedence (Python's; comparisons 0), else None."""
    match = _BINARY.match(obj.template) if type(obj) is ValueChoiceX else None
    return None if match is None else _PRECEDENCE.get(match.group(1), 0)


def _wrapped(obj: Any) -> bool:
    """Whether an expression's text is enclosed in one pair of parentheses by its template."""
    return type(obj) is ValueChoiceX and obj.template.startswith("(") and obj.template.endswith(")")


def _symbol(obj: Any) -> str:
    """How an argument reads inside an expression's repr: a leaf by its label."""
    if isinstance(obj, ValueChoice):
        return obj.label
    if isinstance(obj, ValueChoiceX):
        return obj._symbolic()
    if isinstance(obj, (list, tuple)) and contains_choice(obj):
        inner = ", ".join(_symbol(o) for o in obj)
        return f"[{inner}]" if isinstance(obj, list) else f"({inner}{',' if len(obj) == 1 else ''})"
    if isinstance(obj, dict) and contains_choice(obj):
        return "{" + ", ".join(f"{k!r}: {_symbol(v)}" for k, v in obj.items()) + "}"
    return repr(obj)


def _apply(fn: Callable[..., Any], template: str, args: list[Any]) -> Any:
    if any(contains_choice(a) for a in args):
        return ValueChoiceX(fn, template, args)
    return fn(*args)


class ValueChoice(ValueChoiceX, metaclass=FixableMeta):
    """Choose one of ``candidates``; usable as an argument of basic units and in expressions.

    Inside ``fixed_arch`` (when a space is rebuilt with a chosen architecture) the
    constructor returns the chosen value itself, which stays callable so that
    ``self.rate()`` in ``forward`` keeps working.
    """

    @classmethod
    def create_fixed(cls, fixed: Mapping[str, Any], candidates: Sequence[Any], *,
                     prior: Sequence[float] | None = None, label: str | None = None) -> Any:
        label = auto_label("value_choice", label)
        candidates = _check_candidates(candidates, label)
        return callable_value(lookup_fixed(fixed, label, candidates))

    def __init__(self, candidates: Sequence[Any], *, prior: Sequence[float] | None = None,
                 label: str | None = None) -> None:
        self.label = auto_label("value_choice", label)
        self.candidates = _check_candidates(candidates, self.label)
        self.prior = _check_prior(prior, len(self.candidates), f"ValueChoice {self.label!r}")
        self.current: Any = None  # set by path-sampling supernets for `self.rate()` in forward
        super().__init__(_identity, "{}", [])

    def inner_choices(self) -> list[ValueChoice]:
        return [self]

    def evaluate_with(self, values: Mapping[str, Any]) -> Any:
        if self.label not in values:
            raise KeyError(f"no value for ValueChoice {self.label!r}")
        value = as_declared(values[self.label], self.candidates)
        choice = Choice(self.label, "value_choice", self.candidates)
        if not choice.contains(value):
            raise ValueError(f"invalid value {value!r} for ValueChoice {self.label!r}; allowed: {self.candidates}")
        return choice.canonical(value)  # the candidate as declared: 4 for 4.0 read from JSON

    def all_options(self) -> list[Any]:
        return list(self.candidates)

    def __repr__(self) -> str:
        return f"ValueChoice({self.candidates!r}, label={self.label!r})"


def _check_candidates(candidates: Any, label: str) -> list[Any]:
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Iterable):
        raise TypeError(f"ValueChoice {label!r}: candidates must be a list, got {type(candidates).__name__}")
    candidates = list(candidates)
    if not candidates:
        raise ValueError(f"ValueChoice {label!r}: candidates must not be empty")
    if any(contains_choice(c) for c in candidates):
        raise TypeError(f"ValueChoice {label!r}: candidates must be plain values, not choices")
    for i, c in enumerate(candidates):
        if any(c == d and type(c) is type(d) or same_sequence(c, d) for d in candidates[:i]):
            raise ValueError(f"ValueChoice {label!r}: candidate {c!r} appears twice in {candidates}")
    return candidates


# -- fixed values stay callable ----------------------------------------------------------------
class _CallableValue:
    """Mixin: calling a fixed value gives it back as its plain type (``k()`` as the README says)."""

    def __call__(self) -> Any:
        return _PLAIN[type(self)](self)


class _CallableInt(_CallableValue, int):
    pass


class _CallableFloat(_CallableValue, float):
    pass


class _CallableStr(_CallableValue, str):
    pass


class _CallableList(_CallableValue, list):
    pass


class _CallableTuple(_CallableValue, tuple):
    pass


class _CallableDict(_CallableValue, dict):
    pass


_CALLABLE = {int: _CallableInt, float: _CallableFloat, str: _CallableStr, list: _CallableList,
             tuple: _CallableTuple, dict: _CallableDict}
_PLAIN = {wrapper: plain for plain, wrapper in _CALLABLE.items()}


def callable_value(value: Any) -> Any:
    """Wrap a chosen number/string/list/tuple/dict so ``value()`` returns it (as ``self.rate()`` on a
    choice does); the wrapper is a subclass, so the value otherwise behaves as itself."""
    wrapper = _CALLABLE.get(type(value))
    return value if wrapper is None else wrapper(value)


def plain_value(value: Any) -> Any:
    """Undo :func:`callable_value` (also inside lists, tuples and dicts)."""
    kind = _PLAIN.get(type(value), type(value))
    if kind in (list, tuple):
        return kind(plain_value(v) for v in value)
    if kind is dict:
        return {k: plain_value(v) for k, v in value.items()}
    return kind(value) if type(value) in _PLAIN else value


# -- helpers over nested arguments -------------------------------------------------------------
def contains_choice(obj: Any) -> bool:
    """Whether ``obj`` is, or (in a list/tuple/dict) holds, a ValueChoice expression."""
    if isinstance(obj, ValueChoiceX):
        return True
    if isinstance(obj, (list, tuple)):
        return any(contains_choice(o) for o in obj)
    if isinstance(obj, dict):
        return any(contains_choice(o) for o in obj.values())
    return False


def evaluate_nested(obj: Any, values: Mapping[str, Any]) -> Any:
    """Replace every ValueChoice expression in ``obj`` by its value under ``values``."""
    if isinstance(obj, ValueChoiceX):
        return obj.evaluate_with(values)
    if isinstance(obj, (list, tuple)):
        return type(obj)(evaluate_nested(o, values) for o in obj)
    if isinstance(obj, dict):
        return {k: evaluate_nested(v, values) for k, v in obj.items()}
    return obj


def default_nested(obj: Any) -> Any:
    """Replace every ValueChoice expression in ``obj`` by its default value."""
    return evaluate_nested(obj, {c.label: c.candidates[0] for c in leaf_choices(obj)})


def leaf_choices(obj: Any) -> list[ValueChoice]:
    """The distinct ValueChoice leaves in ``obj`` (expression or nested container), by label."""
    found: dict[str, ValueChoice] = {}

    def visit(o: Any) -> None:
        if isinstance(o, ValueChoice):
            found.setdefault(o.label, o)
        elif isinstance(o, ValueChoiceX):
            for a in o.arguments:
                visit(a)
        elif isinstance(o, (list, tuple)):
            for a in o:
                visit(a)
        elif isinstance(o, dict):
            for a in o.values():
                visit(a)

    visit(obj)
    return list(found.values())
