"""xenscripts.core.args: upstream's findCommand/evalVariables, without eval."""

from __future__ import annotations

import pytest

from xenscripts.core.args import merge_inputs, parse_args
from xenscripts.core.errors import InputError


@pytest.mark.parametrize(("argv", "command"), [
    (["online"], "online"),
    (["online", "type_if=vif"], "online"),
    (["type_if=vif", "online"], "online"),                 # k=v before the command
    (["bridge=xenbr1", "type_if=tap", "add"], "add"),
    (["offline", "online"], "offline"),                    # the first word wins
    (["type_if=vif"], None),                               # no command at all
    ([], None),
    (["=online", "offline"], "offline"),                   # "=x" is not a command either
    (["a=b=c", "remove"], "remove"),
])
def test_command_is_first_argument_without_equals(argv, command):
    assert parse_args(argv).command == command


@pytest.mark.parametrize(("argv", "assignments"), [
    (["online", "bridge=xenbr1"], {"bridge": "xenbr1"}),
    (["bridge=xenbr1", "online", "ip=10.0.0.1"], {"bridge": "xenbr1", "ip": "10.0.0.1"}),
    (["online", "bridge=a", "bridge=b"], {"bridge": "b"}),      # later assignment wins
    (["online", "ip="], {"ip": ""}),                            # empty value is kept
    (["online", "a=b=c"], {"a": "b=c"}),                        # split at the first '='
    (["online", "_x1=y"], {"_x1": "y"}),
    (["online", "=x"], {}),                                     # '=x' ignored
    (["online", "=", "bridge=br"], {"bridge": "br"}),
    # quotes: one matching outer pair is stripped, as the shell's eval would
    (["online", "bridge='xenbr1'"], {"bridge": "xenbr1"}),
    (['online', 'bridge="xenbr1"'], {"bridge": "xenbr1"}),
    (['online', "ip='10.0.0.1 10.0.0.2'"], {"ip": "10.0.0.1 10.0.0.2"}),
    (["online", "bridge='xenbr1\""], {"bridge": "'xenbr1\""}),  # mismatched: kept
    (["online", "bridge='"], {"bridge": "'"}),                  # a lone quote: kept
    (["online", "bridge=''"], {"bridge": ""}),
    # never evaluated: command substitutions and variables stay literal
    (["online", "bridge='$(touch /tmp/x)'"], {"bridge": "$(touch /tmp/x)"}),
    (["online", "bridge=$(touch /tmp/x)"], {"bridge": "$(touch /tmp/x)"}),
    (["online", "bridge=`id`"], {"bridge": "`id`"}),
    (["online", "bridge=$HOME"], {"bridge": "$HOME"}),
    (["online", "ip=1;rm -rf /"], {"ip": "1;rm -rf /"}),
])
def test_assignments(argv, assignments):
    assert parse_args(argv).assignments == assignments


@pytest.mark.parametrize("arg", [
    "1bridge=x",          # starts with a digit
    "a-b=x",
    "a b=x",
    "a.b=x",
    "$(touch /tmp/x)=y",
    "`id`=y",
    "a;b=c",
    "é=x",
])
def test_invalid_keys_are_rejected_naming_the_argument(arg):
    with pytest.raises(InputError) as exc:
        parse_args(["online", arg])
    assert repr(arg) in str(exc.value)


@pytest.mark.parametrize(("env", "assignments", "keys", "expected"), [
    ({"bridge": "envbr"}, {}, ("bridge",), {"bridge": "envbr"}),
    ({"bridge": "envbr"}, {"bridge": "argbr"}, ("bridge",), {"bridge": "argbr"}),      # argv over env
    ({"bridge": "envbr", "HOME": "/root"}, {}, ("bridge",), {"bridge": "envbr"}),      # only the keys
    ({}, {"foo": "bar"}, ("bridge",), {"foo": "bar"}),     # unknown argv keys accepted, as upstream
    (None, {"ip": "10.0.0.1"}, ("ip",), {"ip": "10.0.0.1"}),
    ({"ip": "10.0.0.1"}, {"ip": ""}, ("ip",), {"ip": ""}),  # an empty argv value still overrides
])
def test_merge_inputs_env_below_argv(env, assignments, keys, expected):
    assert merge_inputs(env, assignments, keys) == expected


def test_key_with_trailing_newline_is_rejected():
    with pytest.raises(InputError):
        parse_args(["online", "bridge\n=x"])
