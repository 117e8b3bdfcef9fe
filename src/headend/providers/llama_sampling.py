"""A sequence's sampler chain, from the request's sampling fields, in the order and with the
defaults llama-cpp-python's ``create_completion`` uses (so answers do not change with
batching): the request's logit bias and grammar first, then repetition penalties, then greedy
at temperature 0, mirostat 1 or 2 when asked, else top-k, typical, top-p, min-p, temperature
and a seeded draw."""

from __future__ import annotations

import ctypes
import importlib
from typing import Any

from headend.errors import InvalidRequest
from headend.providers.base import SamplingParams
from headend.providers.llama_grammar import Grammar

DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp: a random seed
PENALTY_LAST_N = 64  # tokens the repetition penalties look back over
MIROSTAT_M = 100


def sampler_for(
    sampling: SamplingParams,
    model: Any,
    *,
    grammar: Grammar | None = None,
    logit_bias: dict[int, float] | None = None,
) -> Any:
    internals: Any = importlib.import_module("llama_cpp._internals")  # untyped
    n_vocab: int = model.n_vocab()
    chain = internals.LlamaSampler()
    try:
        if logit_bias:
            chain.add_logit_bias(n_vocab, logit_bias)
        if grammar is not None:
            _add_grammar(chain, model, grammar)
    except InvalidRequest:
        chain.close()
        raise
    seed = sampling.seed if sampling.seed is not None else DEFAULT_SEED
    seed &= 0xFFFFFFFF
    temperature = sampling.temperature if sampling.temperature is not None else 0.8
    chain.add_penalties(
        n_vocab=n_vocab,
        penalty_last_n=PENALTY_LAST_N,
        penalty_repeat=sampling.repeat_penalty if sampling.repeat_penalty is not None else 1.0,
        penalty_freq=sampling.frequency_penalty or 0.0,
        penalty_present=sampling.presence_penalty or 0.0,
    )
    tau = sampling.mirostat_tau if sampling.mirostat_tau is not None else 5.0
    eta = sampling.mirostat_eta if sampling.mirostat_eta is not None else 0.1
    if temperature == 0:
        chain.add_greedy()
    elif sampling.mirostat == 1:
        chain.add_mirostat(n_vocab, seed, tau, eta, MIROSTAT_M)
    elif sampling.mirostat == 2:
        chain.add_mirostat_v2(seed, tau, eta)
    else:
        chain.add_top_k(sampling.top_k if sampling.top_k is not None else 40)
        chain.add_typical(sampling.typical_p if sampling.typical_p is not None else 1.0, 1)
        chain.add_top_p(sampling.top_p if sampling.top_p is not None else 0.95, 1)
        chain.add_min_p(sampling.min_p if sampling.min_p is not None else 0.05, 1)
        chain.add_temp(temperature)
        chain.add_dist(seed)
    return chain


def _add_grammar(chain: Any, model: Any, grammar: Grammar) -> None:
    llama: Any = importlib.import_module("llama_cpp")
    text, root = grammar.text.encode("utf-8"), b"root"
    if grammar.triggers:
        patterns = (ctypes.c_char_p * len(grammar.triggers))(
            *(t.encode("utf-8") for t in grammar.triggers)
        )
        no_tokens = (llama.llama_token * 0)()
        sampler = llama.llama_sampler_init_grammar_lazy_patterns(
            model.vocab, text, root, patterns, len(grammar.triggers), no_tokens, 0
        )
    else:
        sampler = llama.llama_sampler_init_grammar(model.vocab, text, root)
    if not sampler:  # llama.cpp could not parse it
        raise InvalidRequest(
            "The schema gives a grammar llama.cpp cannot use; simplify it.",
            param=grammar.param or None,
        )
    llama.llama_sampler_chain_add(chain.sampler, sampler)
