// audio_encoder.h — the Qwen2-Audio encoder (Hugging Face Qwen2AudioEncoder) with OpenS2S's long-audio
// handling (src/modeling_audio_encoder.py): log-mel cut into 30 s chunks, every chunk encoded on its own, each
// audio keeping its valid output rows.
//
// Per chunk of F = 2 * max_source_positions mel frames (3000):
//   conv1 (mels -> d, k3 p1) + GELU; conv2 (d -> d, k3 s2 p1) + GELU; + embed_positions (a stored, frozen
//   table); N pre-LN layers (LN eps 1e-5; q/v/out with bias, k without; q scaled by head_dim^-0.5; fc1 -> exact
//   GELU -> fc2); AvgPool1d(2, 2); final LayerNorm. No attention mask inside a chunk: the padded mel frames of
//   a partial chunk are attended to, exactly as in Hugging Face and OpenS2S.
// Length bookkeeping: a chunk holding L valid frames yields L2 rows, L1 = (L-1)//2+1, L2 = (L1-2)//2+1
// (floor division; 3000 frames -> 750 rows, 25 Hz). An audio of V valid frames uses ceil(V / F) chunks
// (later chunks of the mel are padding and are not computed) and keeps sum over its chunks of L2 rows; since
// only its last chunk is partial, those are the first L2 rows of each chunk, in order.
//
// Parameters, registered under "audio_encoder_model." with the Hugging Face names (checkpoint.h maps
// Qwen2-Audio's audio_tower.* and bare encoder checkpoints to them):
//   conv1.{weight [d, mels, 3], bias [d]}, conv2.{weight [d, d, 3], bias [d]}, embed_positions.weight [P, d],
//   layers.N.self_attn.{q_proj.{weight,bias}, k_proj.weight, v_proj.{weight,bias}, out_proj.{weight,bias}},
//   layers.N.{self_attn_layer_norm, final_layer_norm}.{weight,bias}, layers.N.fc1.{weight [ffn, d], bias},
//   layers.N.fc2.{weight [d, ffn], bias}, layer_norm.{weight,bias}.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "../autograd/params.h"
#include "../ops/ops.h"
#include "hf_config.h"

struct s2s_audio_encoder;

typedef struct s2s_audio_encoder_layer {
    const struct s2s_audio_encoder *enc;  // dims and eps; the layer is a recompute region's closure
    s2s_tensor *attn_ln_w, *attn_ln_b;    // self_attn_layer_norm [d]
    s2s_tensor *q_w, *q_b, *k_w, *v_w, *v_b, *o_w, *o_b;  // [d, d] / [d]; k_proj has no bias
    s2s_tensor *ffn_ln_w, *ffn_ln_b;      // final_layer_norm [d]
    s2s_tensor *fc1_w, *fc1_b;            // [ffn, d], [ffn]
    s2s_tensor *fc2_w, *fc2_b;            // [d, ffn], [d]
} s2s_audio_encoder_layer;

typedef struct s2s_audio_encoder {
    s2s_audio_encoder_config cfg;
    int64_t n_mels, d_model, n_heads, head_dim, ffn_dim, n_layers;
    int64_t n_pos;         // max_source_positions: rows per chunk after conv2 (1500)
    int64_t chunk_frames;  // mel frames per chunk, 2 * n_pos (3000 = 30 s)
    float ln_eps;          // every LayerNorm: torch's default 1e-5 (Qwen2AudioEncoder sets none)
    bool recompute;        // run each layer as a recompute region (keeps only layer inputs for backward)
    s2s_tensor *conv1_w, *conv1_b, *conv2_w, *conv2_b;
    s2s_tensor *embed_positions;  // [n_pos, d], never trained (requires_grad_(False) in HF)
    s2s_audio_encoder_layer *layers;
    s2s_tensor *ln_w, *ln_b;      // layer_norm [d]
} s2s_audio_encoder;

// Register every parameter in P under "audio_encoder_model." (zero-filled: load them with checkpoint.h).
// They are registered frozen, as the encoder is in every OpenS2S stage; s2s_audio_encoder_set_trainable
// unfreezes them.
void s2s_audio_encoder_init(s2s_audio_encoder *m, const s2s_audio_encoder_config *cfg, s2s_params *P);
void s2s_audio_encoder_free(s2s_audio_encoder *m);
// OpenS2S --unfreeze_audio: every encoder parameter but embed_positions, which stays frozen.
void s2s_audio_encoder_set_trainable(s2s_params *P, bool trainable);

// Rows a chunk with `frames` valid mel frames yields (L2 above; 0 for frames <= 2).
int64_t s2s_audio_encoder_chunk_len(int64_t frames);
// Chunks an audio of valid_frames uses: ceil(valid_frames / chunk_frames).
int64_t s2s_audio_encoder_n_chunks(const s2s_audio_encoder *m, int64_t valid_frames);
// Rows an audio of valid_frames yields: the sum over its chunks.
int64_t s2s_audio_encoder_out_len(const s2s_audio_encoder *m, int64_t valid_frames);

// mel [A, n_mels, k * chunk_frames] (f32, on ctx's device; frames past an audio's valid_frames are padding,
// and are read wherever they share a chunk with valid frames); valid_frames[A] on the host.
// Returns the packed encoder output [sum out_lens, d] (audio 0's rows, then audio 1's, ...) and writes
// out_lens[A]. All chunks of all audios run as one packed batch; attention never crosses a chunk.
// The same on chunk-major log-mel, as the loader delivers it: mel [C, n_mels, chunk_frames], audio a owning chunks
// [chunk_off[a], chunk_off[a+1]) (at least as many as its valid frames need; surplus chunks are not computed).
s2s_tensor *s2s_audio_encoder_forward_chunks(s2s_ctx *ctx, const s2s_audio_encoder *m, s2s_tensor *mel,
                                             const int64_t *chunk_off, const int64_t *valid_frames, int64_t A,
                                             int64_t *out_lens);
s2s_tensor *s2s_audio_encoder_forward(s2s_ctx *ctx, const s2s_audio_encoder *m, s2s_tensor *mel,
                                      const int64_t *valid_frames, int64_t *out_lens);
