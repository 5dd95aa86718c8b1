"""One shared pass for many LoRA adapters on one base model (``hf`` + peft mixed batches).

Every adapter of a batch of versions is scored on the same questions. Instead of loading
the base once per adapter and running the suite N times, the base is loaded once with all
N LoRAs attached, and each lm-eval request is run for every adapter inside the same
forward pass: peft's ``adapter_names=`` gives each row of a batch its own adapter.

lm-eval still runs once per adapter (so results, samples and metrics are exactly what a
single run stores), but only the first adapter's run computes anything: its requests are
scored for all N adapters at once and the other runs read their answers back. A request
that was not precomputed (it cannot happen with identical tasks, but a task with random
sampling would show it) is computed for that adapter alone, so a view never answers with
another adapter's output.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM

from .device import placement
from .wrappers import DelegatingLM


def _key(method: str, args: Sequence[Any]) -> str:
    return json.dumps([method, list(args)], sort_keys=True, default=str)


class SharedAdapters:
    """The base model with N LoRA adapters, scoring requests for all of them per batch."""

    def __init__(self, *, base_path: Path, adapter_paths: Sequence[Path], batch_size: int = 8) -> None:
        from lm_eval.models.huggingface import HFLM
        from peft import PeftModel

        if not adapter_paths:
            raise ValueError("a shared pass needs at least one adapter")
        for path in adapter_paths:
            kind = json.loads((Path(path) / "adapter_config.json").read_text()).get("peft_type")
            if kind != "LORA":
                raise ValueError(f"{path} is a {kind} adapter: a shared pass mixes LoRA adapters only")
        where = placement()
        self.hflm = HFLM(pretrained=str(base_path), batch_size=batch_size, device=where.device, dtype=where.dtype)
        self.names = [f"a{i}" for i in range(len(adapter_paths))]
        model = PeftModel.from_pretrained(self.hflm.model, str(adapter_paths[0]), adapter_name=self.names[0])
        for name, path in zip(self.names[1:], adapter_paths[1:], strict=True):
            model.load_adapter(str(path), adapter_name=name)
        model.eval()
        self.hflm._model = model
        self.model = model
        self.rows_per_batch = max(1, batch_size) * len(self.names)
        self._cache: list[dict[str, Any]] = [{} for _ in self.names]
        self._expected = set(range(len(self.names)))

    def expect(self, indices: Sequence[int]) -> None:
        """The adapters whose views the next arm asks, in this order; a view asks for its
        requests once for all of them. Forgets the answers of the arm before."""
        self._expected = set(indices)
        self._cache = [{} for _ in self.names]

    def view(self, index: int) -> LM:
        """The lm-eval ``LM`` of adapter ``index``."""
        return _AdapterView(self, index)

    # -- the two request types, for every adapter at once ------------------------------------------------------

    def _run(self, method: str, requests: Sequence[Any], index: int, compute) -> list[Any]:
        keys = [_key(method, r.args) for r in requests]
        todo = sorted({k: i for i, k in enumerate(keys) if k not in self._cache[index]}.values())
        if todo:
            # Computed for this adapter and every later one still missing it: views run in order,
            # so the first view's requests are scored for all adapters in the same batches.
            wanted = [
                j
                for j in range(index, len(self.names))
                if j == index or (j in self._expected and any(keys[i] not in self._cache[j] for i in todo))
            ]
            fresh = compute([requests[i].args for i in todo], [self.names[j] for j in wanted])
            for j, values in zip(wanted, fresh, strict=True):
                for i, value in zip(todo, values, strict=True):
                    self._cache[j][keys[i]] = value
        return [self._cache[index][k] for k in keys]

    def loglikelihood(self, requests: Sequence[Any], index: int) -> list[tuple[float, bool]]:
        return self._run("loglikelihood", requests, index, self._loglikelihood)

    def generate_until(self, requests: Sequence[Any], index: int) -> list[str]:
        return self._run("generate_until", requests, index, self._generate)

    def _loglikelihood(self, pairs: Sequence[tuple[str, str]], names: Sequence[str]) -> list[list[tuple[float, bool]]]:
        import torch
        import torch.nn.functional as F

        lm = self.hflm
        encoded = []
        for context, continuation in pairs:
            if context:
                ctx, cont = lm._encode_pair(context, continuation)
            else:
                ctx, cont = [lm.prefix_token_id], lm.tok_encode(continuation)
            encoded.append((ctx, cont))
        rows = [(a, r) for r in range(len(pairs)) for a in range(len(names))]
        # Longest first, as lm-eval does, so a batch pads to its first row.
        rows.sort(key=lambda ar: -(len(encoded[ar[1]][0]) + len(encoded[ar[1]][1])))
        out: list[list[tuple[float, bool] | None]] = [[None] * len(pairs) for _ in names]
        for start in range(0, len(rows), self.rows_per_batch):
            batch = rows[start : start + self.rows_per_batch]
            inputs = [(encoded[r][0] + encoded[r][1])[-(lm.max_length + 1) :][:-1] for _, r in batch]
            width = max(len(i) for i in inputs)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            for n, inp in enumerate(inputs):
                ids[n, : len(inp)] = torch.tensor(inp)
            # Logits only for the positions that score a continuation: a full (rows x width x vocab)
            # tensor is gigabytes for a batch of many adapters' rows.
            keep = max(width - len(inp) + len(encoded[r][1]) for (_, r), inp in zip(batch, inputs, strict=True))
            with torch.no_grad():
                logits = self.model(
                    input_ids=ids.to(lm.device), adapter_names=[names[a] for a, _ in batch], logits_to_keep=keep
                ).logits
            offset = width - keep
            for n, ((a, r), inp) in enumerate(zip(batch, inputs, strict=True)):
                cont = encoded[r][1]
                start = len(inp) - len(cont) - offset
                scored = F.log_softmax(logits[n, start : start + len(cont)].float().cpu(), dim=-1)
                target = torch.tensor(cont, dtype=torch.long)
                greedy = bool((scored.argmax(dim=-1) == target).all())
                out[a][r] = (float(scored.gather(1, target[:, None]).sum()), greedy)
        return out  # type: ignore[return-value]

    def _generate(self, requests: Sequence[tuple[str, dict]], names: Sequence[str]) -> list[list[str]]:
        from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text

        lm = self.hflm
        eos = lm.tok_decode(lm.eot_token_id, skip_special_tokens=False)
        out: list[list[str | None]] = [[None] * len(requests) for _ in names]
        groups: dict[str, list[int]] = {}
        for r, (_, gen_kwargs) in enumerate(requests):
            groups.setdefault(json.dumps(gen_kwargs, sort_keys=True, default=str), []).append(r)
        for members in groups.values():
            kwargs = normalize_gen_kwargs(dict(requests[members[0]][1]), lm.max_gen_toks)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
            max_gen_toks = kwargs.pop("max_gen_toks")
            rows = [(a, r) for r in members for a in range(len(names))]
            rows.sort(key=lambda ar: -len(requests[ar[1]][0]))
            for start in range(0, len(rows), self.rows_per_batch):
                batch = rows[start : start + self.rows_per_batch]
                ids, mask = lm.tok_batch_encode(
                    [requests[r][0] for _, r in batch], left_truncate_len=lm.max_length - max_gen_toks
                )
                # lm-eval's own generate call (greedy unless the task asks otherwise), one adapter per row.
                generated = lm._model_generate(
                    context=ids.to(lm.device),
                    attention_mask=mask.to(lm.device),
                    stop=until,
                    max_length=ids.shape[1] + max_gen_toks,
                    adapter_names=[names[a] for a, _ in batch],
                    **dict(kwargs),
                )
                for n, (a, r) in enumerate(batch):
                    text = lm.tok_decode(generated[n, ids.shape[1] :].tolist())
                    out[a][r] = postprocess_generated_text(generation=text, stop=until, think_end_token=None)
        return out  # type: ignore[return-value]


class _AdapterView(DelegatingLM):
    """What lm-eval sees of one adapter of a :class:`SharedAdapters`."""

    def __init__(self, shared: SharedAdapters, index: int) -> None:
        super().__init__(shared.hflm)
        self.shared = shared
        self.index = index

    def loglikelihood(self, requests):
        return self.shared.loglikelihood(requests, self.index)

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError("a shared pass scores loglikelihood and generate_until tasks")

    def generate_until(self, requests):
        return self.shared.generate_until(requests, self.index)


def run_arms_shared(specs: Sequence[Any], report) -> list[Any]:
    """Run the arms ``specs`` (equal but for their LoRA adapter) in one shared pass.

    Returns one :class:`~evaluator.engine.runner.ArmOutcome` per spec, in order, each
    the same lm-eval output a run of that spec alone stores.
    """
    from dataclasses import replace

    from .runner import run_arm

    first = specs[0]
    if any(replace(s, adapter_path=first.adapter_path) != first for s in specs):
        raise ValueError("a shared pass runs arms that differ only in their adapter")
    shared = SharedAdapters(
        base_path=first.base_path, adapter_paths=[s.adapter_path for s in specs], batch_size=first.batch_size
    )
    return [run_arm(spec, report, lm=shared.view(i)) for i, spec in enumerate(specs)]
