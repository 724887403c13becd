// adapter.h — OpenS2S's audio adapter (src/modeling_adapter.py Subsampler): encoder rows (25 Hz) to LLM-width
// rows (6.25 Hz with the default two convolutions).
//
//   x [L, in] -> conv_layers.i: Conv1d(k_i, stride 2, padding k_i // 2) + GLU over channels, i = 0..n-1
//                (in -> 2 in, GLU -> in, ..., last: in -> 2 H, GLU -> H)
//             -> h [L', H]; out = LayerNorm(h + fc2(GELU(fc1(h))), eps 1e-5), fc1 H -> inner, fc2 inner -> H,
//                both without bias.
// Lengths: L' is OpenS2S's get_out_seq_lens_tensor, floor((L - 1) / 2 + 1) per convolution (0 stays 0); with
// an even kernel the convolution yields one row more, and only the first L' are kept (OpenS2S's attention
// mask). Each audio runs through the convolutions on its own rows, zero-padded at both ends: no audio sees
// another's rows or padding (OpenS2S at batch size 1; docs/models-audio.md says why not its padded batch).
//
// Parameters under "audio_adapter.": subsampler.conv_layers.i.{weight [Cout, Cin, k_i], bias [Cout]},
// fc1.weight [inner, H], fc2.weight [H, inner], ln.{weight, bias} [H].
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "../autograd/params.h"
#include "../autograd/rng.h"
#include "../ops/ops.h"
#include "hf_config.h"

typedef struct s2s_adapter_config {
    int64_t in_dim;     // the encoder's d_model (1280)
    int64_t hidden;     // H, the LLM's hidden size
    int64_t inner_dim;  // adapter_inner_dim (512)
    int n_conv;         // conv_kernel_sizes "5,5": 2
    int64_t kernel[S2S_CFG_MAX_CONV];
} s2s_adapter_config;

typedef struct s2s_adapter {
    s2s_adapter_config cfg;
    float ln_eps;  // 1e-5, as OpenS2S constructs its LayerNorm
    s2s_tensor *conv_w[S2S_CFG_MAX_CONV], *conv_b[S2S_CFG_MAX_CONV];
    s2s_tensor *fc1_w, *fc2_w;  // [inner, H], [H, inner]
    s2s_tensor *ln_w, *ln_b;    // [H]
} s2s_adapter;

// OmniSpeechModel's Subsampler(audio d_model, adapter_inner_dim, llm hidden_size, conv_kernel_sizes).
s2s_adapter_config s2s_adapter_config_from_omnispeech(const s2s_omnispeech_config *c);

// Register the parameters in P under "audio_adapter." (trainable: stages 1 and 3 train it), zero-filled.
void s2s_adapter_init(s2s_adapter *m, const s2s_adapter_config *cfg, s2s_params *P);
// PyTorch's default initialisation, which is what OpenS2S's fresh adapter gets (OmniSpeechModel applies no
// init of its own): conv and linear weights and conv biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), LayerNorm
// weight 1 and bias 0.
void s2s_adapter_init_weights(s2s_adapter *m, s2s_rng *rng);

int64_t s2s_adapter_out_len(const s2s_adapter *m, int64_t in_len);

// x [sum lens, in] packed per audio (the encoder's output), lens[A] on the host. Returns [sum out_lens, H]
// packed the same way, and writes out_lens[A].
s2s_tensor *s2s_adapter_forward(s2s_ctx *ctx, const s2s_adapter *m, s2s_tensor *x, const int64_t *lens, int64_t A,
                                int64_t *out_lens);
