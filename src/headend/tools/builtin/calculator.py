"""``calculator``: arithmetic parsed into a syntax tree and evaluated node by node, never
``eval``. Only numbers, arithmetic operators and a few math functions are understood."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from headend.tools.base import ToolContext, ToolError
from headend.types import Json

MAX_EXPRESSION = 500
MAX_EXPONENT = 10_000
MAX_MAGNITUDE = 10**100

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: getattr(math, name)
    for name in (
        "sqrt",
        "sin",
        "cos",
        "tan",
        "asin",
        "acos",
        "atan",
        "log",
        "log10",
        "log2",
        "exp",
        "floor",
        "ceil",
        "factorial",
        "radians",
        "degrees",
    )
} | {"abs": abs, "round": round, "min": min, "max": max}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError("only numbers are allowed")
    if abs(value) > MAX_MAGNITUDE:
        raise ToolError("the result is too large")
    return value


def _eval(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        return _number(node.value)
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _number(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError("the exponent is too large")
        return _number(_BINARY[type(node.op)](left, right))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        arguments = [_eval(argument) for argument in node.args]
        if node.func.id == "factorial" and arguments and arguments[0] > 1000:
            raise ToolError("the factorial is too large")
        return _number(_FUNCTIONS[node.func.id](*arguments))
    raise ToolError(f"unsupported expression element: {type(node).__name__}")


def evaluate(expression: str) -> float | int:
    if len(expression) > MAX_EXPRESSION:
        raise ToolError(f"the expression is longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not an arithmetic expression: {exc.msg}") from None
    try:
        return _eval(tree)
    except (ZeroDivisionError, ValueError, OverflowError, TypeError) as exc:
        raise ToolError(str(exc) or type(exc).__name__) from None


class Calculator:
    name = "calculator"
    ref = "calculator"
    read_only = True
    description = (
        "Evaluate an arithmetic expression: + - * / // % ** and parentheses, the constants "
        "pi, e and tau, and sqrt, sin, cos, tan, log, log10, exp, floor, ceil, abs, round, "
        "min, max, factorial."
    )
    timeout = 5.0

    def __init__(self) -> None:
        self.parameters: Json = {
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "e.g. (2 + 3) * 4"}},
            "required": ["expression"],
        }

    async def run(self, arguments: Json, context: ToolContext) -> str:
        expression = arguments.get("expression")
        if not isinstance(expression, str):
            raise ToolError("'expression' must be a string")
        result = evaluate(expression)
        if isinstance(result, float) and result.is_integer() and abs(result) < 2**53:
            return str(int(result))
        return str(result)

    def repeatable(self, arguments: Json) -> bool:
        return True

    def label(self, arguments: Json) -> str:
        return f"calculating {str(arguments.get('expression', ''))[:60]}"
