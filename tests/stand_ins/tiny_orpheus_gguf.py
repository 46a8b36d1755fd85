"""A tiny Llama GGUF with Orpheus's token layout, for running a real llama-server in tests.

One layer whose attention-output and FFN-down weights are zero, so the residual stream is the
current token's embedding and the next token depends on it alone. Embeddings and output rows
are set so that every audio token of slot s is followed by a token of slot s + 1 (all 4096 codes
tie; llama.cpp's top_k keeps 40 of them), and a marked share of the slot-6 tokens is followed
by end-of-speech (`<custom_token_2>`, the EOS id). Everything outside the audio chain (the
prompt's last token included) leads to slot 0.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

CUSTOM_TOKENS = 28682  # <custom_token_0> .. <custom_token_28681>: controls + 7 x 4096 codes
AUDIO_BASE = 10
EMBED = 16
END_DIM = 7  # the embedding dimension that predicts end-of-speech
LOGIT_SCALE = 10.0


def _byte_tokens() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes."""
    printable = list(range(ord("!"), ord("~") + 1))
    printable += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for byte in range(256):
        if byte in printable:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def write_tiny_orpheus(
    path: Path, end_every: int | None = 4, eos_is_end_of_speech: bool = True, width: int = EMBED
) -> Path:
    """Write the GGUF; a slot-6 code c ends speech when c % end_every == 1 (None: never).

    With eos_is_end_of_speech False, `<|eot_id|>` is the EOS and `<custom_token_2>` an ordinary
    token: only the request's stop string can end the stream there. A larger width makes the
    same model a larger file (~0.23 MB per unit; download tests need several 10 MB chunks).
    """
    tokens = [*_byte_tokens(), "Ġt"]  # one BPE merge: llama.cpp needs at least one
    types = [gguf.TokenType.NORMAL] * len(tokens)
    special = {"<|begin_of_text|>": gguf.TokenType.CONTROL, "<|eot_id|>": gguf.TokenType.CONTROL}
    special["<|audio|>"] = gguf.TokenType.USER_DEFINED
    for text, kind in special.items():
        tokens.append(text)
        types.append(kind)
    custom_base = len(tokens)
    tokens += [f"<custom_token_{n}>" for n in range(CUSTOM_TOKENS)]
    types += [gguf.TokenType.USER_DEFINED] * CUSTOM_TOKENS
    vocab = len(tokens)

    embed = np.zeros((vocab, width), dtype=np.float32)
    embed[:, 6] = 1.0  # by default "as if after slot 6": next comes slot 0
    output = np.zeros((vocab, width), dtype=np.float32)
    for slot in range(7):
        first = custom_base + AUDIO_BASE + slot * 4096
        rows = slice(first, first + 4096)
        embed[rows] = 0.0
        embed[rows, slot] = 1.0
        output[rows, (slot - 1) % 7] = LOGIT_SCALE
    if end_every is not None:
        first_slot6 = custom_base + AUDIO_BASE + 6 * 4096
        marked = [first_slot6 + code for code in range(4096) if code % end_every == 1]
        embed[marked] = 0.0
        embed[marked, END_DIM] = 1.0
    end_of_speech = custom_base + 2
    output[end_of_speech, END_DIM] = LOGIT_SCALE

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-orpheus")
    writer.add_context_length(8192)
    writer.add_embedding_length(width)
    writer.add_block_count(1)
    writer.add_feed_forward_length(32)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_rope_dimension_count(width // 2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("llama-bpe")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(["Ġ t"])
    writer.add_bos_token_id(tokens.index("<|begin_of_text|>"))
    writer.add_eos_token_id(end_of_speech if eos_is_end_of_speech else tokens.index("<|eot_id|>"))
    writer.add_eot_token_id(tokens.index("<|eot_id|>"))
    writer.add_add_bos_token(False)  # the Orpheus prompt carries its own BOS

    rng = np.random.default_rng(0)
    ones = np.ones(width, dtype=np.float32)
    writer.add_tensor("token_embd.weight", embed)
    writer.add_tensor("output_norm.weight", ones)
    writer.add_tensor("output.weight", output)
    layer = {
        "attn_norm": ones,
        "attn_q": rng.normal(0, 0.1, (width, width)).astype(np.float32),
        "attn_k": rng.normal(0, 0.1, (width, width)).astype(np.float32),
        "attn_v": rng.normal(0, 0.1, (width, width)).astype(np.float32),
        "attn_output": np.zeros((width, width), dtype=np.float32),  # attention adds nothing
        "ffn_norm": ones,
        "ffn_gate": rng.normal(0, 0.1, (32, width)).astype(np.float32),
        "ffn_up": rng.normal(0, 0.1, (32, width)).astype(np.float32),
        "ffn_down": np.zeros((width, 32), dtype=np.float32),  # nor does the FFN
    }
    for name, tensor in layer.items():
        writer.add_tensor(f"blk.0.{name}.weight", tensor)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
