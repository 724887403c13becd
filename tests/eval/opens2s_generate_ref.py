"""A PyTorch rendering of OpenS2S's `OmniSpeechModel.generate(units_gen=True)` (CASIA-LM/OpenS2S,
src/modeling_omnispeech.py), written from a reading of that code, on the OmniSpeech rendering of
tools/fixtures/gen_omnispeech.py (transformers' Qwen3ForCausalLM / Qwen2AudioEncoder) with Hugging Face `generate`
doing each round, as OpenS2S does. tests/eval/test_chat.py compares `s2s chat --json` with it.

What OpenS2S does, and this module reproduces (batch 1):
- inputs_embeds = prepare_inputs_labels_for_llm(..., inference=True): token embeddings with each -200 placeholder
  replaced by its audio's encoder + adapter rows; without audio, the plain token embeddings (no dummy speech);
- the speaker row spk_ln(spk2tts(spk_emb)) opens the TTS input (spk_emb zeros: OpenS2S's generate reads spk_emb
  from kwargs, where the named parameter never is, so it always uses zeros);
- rounds: the LLM generates up to min(text_span, budget) tokens continuing its KV cache (HF generate feeds the
  uncached suffix of the grown inputs_embeds); the round's final-norm hidden states — at the first round the last
  prompt position's and those of the tokens fed back, afterwards every step's — go through llm2tts + llm_ln onto
  the TTS input; the LLM is done when its last token is an EOS or the budget is spent; then the TTS-LM generates
  up to min(speech_span, budget) units (all the rest of its budget once the LLM is done) continuing its cache, and
  the units' embeddings join its input; a TTS round with no budget left ends the loop;
- returns sequences (every round's LLM tokens, EOS included) and units (every round's, as generated).
"""
import torch
from transformers import GenerationConfig


def _round(model, embeds, cfg, past, hidden):
    out = model.generate(inputs_embeds=embeds, generation_config=cfg, return_dict_in_generate=True,
                         output_hidden_states=hidden, past_key_values=past)
    return out


def generate_units(omni, inputs_embeds, max_new_tokens, eos_token_id, tts_max_new_tokens, tts_eos_token_id,
                   spk_emb=None, do_sample=False):
    """omni: the rendering (llm_model, tts_lm_model, llm2tts, llm_ln, text_span, speech_span) in eval mode;
    inputs_embeds [1, T, H]. Returns (sequences list[int], units list[int])."""
    eos = eos_token_id if isinstance(eos_token_id, list) else [eos_token_id]
    teos = tts_eos_token_id if isinstance(tts_eos_token_id, list) else [tts_eos_token_id]
    gen = GenerationConfig(max_new_tokens=max_new_tokens, eos_token_id=eos, do_sample=do_sample, pad_token_id=eos[0])
    tgen = GenerationConfig(max_new_tokens=tts_max_new_tokens, eos_token_id=teos, do_sample=do_sample,
                            pad_token_id=teos[0])
    dt = inputs_embeds.dtype
    spk = torch.zeros(1, 1, 512, dtype=dt) if spk_emb is None else torch.as_tensor(spk_emb, dtype=dt).reshape(1, 1, 512)
    tts = omni.tts_lm_model
    spk = tts.spk_ln(tts.spk2tts(spk))
    sequences, units = [], []
    tts_inputs = [spk]
    llm_past = tts_past = None
    finished, first = False, True
    while not finished:
        gen.max_new_tokens = min(omni.text_span, max_new_tokens)
        out = _round(omni.llm_model, inputs_embeds, gen, llm_past, True)
        llm_past = out.past_key_values
        seq = out.sequences[0]
        g = len(seq)
        max_new_tokens -= g
        if seq.tolist()[-1] in eos or max_new_tokens < 1:
            finished = True
        sequences += seq.tolist()
        inputs_embeds = torch.cat([inputs_embeds, omni.llm_model.get_input_embeddings()(out.sequences)], dim=1)
        hs = out.hidden_states
        if first:
            h = torch.cat([hs[0][-1][:, -1:, :]] + [hs[i][-1] for i in range(len(hs) - g + 1, len(hs))], dim=1)
            first = False
        else:
            h = torch.cat([hs[i][-1] for i in range(len(hs) - g, len(hs))], dim=1)
        tts_inputs.append(omni.llm_ln(omni.llm2tts(h)))
        n = tts_max_new_tokens if finished else min(omni.speech_span, tts_max_new_tokens)
        if n < 1:
            break
        tgen.max_new_tokens = n
        tout = _round(tts, torch.cat(tts_inputs, dim=1), tgen, tts_past, False)
        tts_past = tout.past_key_values
        tts_max_new_tokens -= len(tout.sequences[0])
        units += tout.sequences[0].tolist()
        tts_inputs.append(tts.get_input_embeddings()(tout.sequences))
    return sequences, units
