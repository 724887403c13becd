#!/usr/bin/env python3
"""Builds the tiny Qwen-style tokenizers that tests and the demo use.

No installable package ships a real Qwen2/Qwen3 tokenizer.json and the Hugging Face hub is not reachable
from our machines, so we train a small byte-level BPE with Hugging Face `tokenizers`, wrapped in exactly
Qwen's pipeline (NFC, the Qwen2 split regex, byte-level mapping without prefix space, byte-level decoder)
and Qwen3's added tokens with Qwen3's ids layout (added tokens follow the BPE vocabulary). Everything the
s2s tokenizer has to get right (regex, NFC, added/special token matching, merge ranks) is exercised; only
the vocabulary is smaller.

Writes two Hugging Face tokenizer directories (tokenizer.json, tokenizer_config.json,
special_tokens_map.json), loadable by transformers.AutoTokenizer:
  configs/tiny/tokenizer/      the LLM tokenizer: Qwen3's added tokens + OpenS2S's four
                               <|im_audio_start|> <|im_audio_end|> <|im_tts_start|> <|im_tts_end|>
  configs/tiny/tts-tokenizer/  the TTS-LM tokenizer: Qwen3's added tokens + <|audio_0|>..<|audio_16383|>;
                               its EOS is <|im_end|>, Qwen3's eos_token, which OpenS2S appends to every
                               unit sequence as tts_tokenizer.eos_token_id.

usage: python3 tools/make_tiny_tokenizers.py [--out configs/tiny] [--vocab 4096]
The output is deterministic for a given `tokenizers` version; the generated files are committed.
"""
import argparse
import json
import os

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Qwen3's added tokens in id order, with its `special` flags (the tool / fim / think markers are not special,
# so skip_special_tokens keeps them).
QWEN3_ADDED = [
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True),
    ("<|quad_start|>", True), ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True),
    ("<|vision_pad|>", True), ("<|image_pad|>", True), ("<|video_pad|>", True),
    ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
    ("<|repo_name|>", False), ("<|file_sep|>", False), ("<tool_response>", False), ("</tool_response>", False),
    ("<think>", False), ("</think>", False),
]
QWEN3_SPECIAL_LIST = [t for t, s in QWEN3_ADDED if s][1:]  # additional_special_tokens (all but endoftext)
OPENS2S_LLM_ADDED = ["<|im_audio_start|>", "<|im_audio_end|>", "<|im_tts_start|>", "<|im_tts_end|>"]
N_AUDIO = 16384

# Training text: small, multilingual, committed here so the tokenizer can be rebuilt anywhere.
TRAIN_TEXT = """\
OpenS2S is an open, fully transparent end-to-end empathetic speech language model. It takes speech in and
gives speech and text out. The audio encoder turns log-mel features into hidden states; the adapter
subsamples them and projects them into the language model's embedding space; the language model writes the
response, and a streaming speech decoder turns its hidden states into discrete speech units, which the
token2wav decoder turns into a waveform. Training runs in three stages: behaviour alignment of the adapter,
speech generation pretraining of the decoder, and full fine-tuning on instruction data.
We're training on 8 GPUs with a batch of 4 and gradient accumulation of 16. It's a large job, isn't it?
They'll resume from the last checkpoint; you've seen that it'd continue exactly where it stopped. I'm sure.
The learning rate warms up for 1000 steps and then decays linearly to 0. Weight decay is 0.05, betas are
0.9 and 0.999, epsilon is 1e-8, and gradients are clipped to a global norm of 1.0. Save every 200 steps.
Speech tokens come from a supervised semantic tokenizer at 12.5 tokens per second with 16,384 codes.
The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG! the the the.
How are you feeling today? I feel a little sad, but talking to you helps. That's wonderful to hear.
Please tell me more about what happened yesterday afternoon at the station, and how you got home.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 3.14159 1,000,000 +86 (010) 555-0199 #7 50% $19.99.
def encode(self, text: str) -> list[int]:
    return [self.vocab[t] for t in self.split(text)]  # comments, code, and    indentation
if (x == 0 && y != 1) { return -1; } else { x += y * 2; }
https://example.com/path?query=1&lang=en-US  user@example.org  C:\\Users\\speech\\data.jsonl
开放的端到端共情语音大模型能够理解说话人的情绪，并用合适的语气做出回应。我们今天很开心，谢谢你的帮助！
语音编码器把梅尔频谱转换为隐藏状态，适配器把它们投影到语言模型的嵌入空间。训练分为三个阶段。
你好，世界。今天天气很好，我们一起去公园散步吧。这个模型支持中文和英文的语音对话。
我觉得有点难过，但是和你聊天让我感觉好多了。请告诉我昨天下午在车站发生了什么事情。
中文文本中的数字如２０２４年和3.14也很常见；标点符号包括，。！？：；“”（）《》——……
日本語の文章も少し含めます。音声言語モデルは感情を理解して、適切な口調で応答します。ありがとうございます。
한국어 문장도 조금 포함합니다. 음성 언어 모델은 감정을 이해하고 적절한 어조로 대답합니다. 감사합니다.
Le modèle de langue parlée comprend les émotions et répond avec un ton approprié. Très bien, merci beaucoup!
Das Sprachmodell versteht Gefühle und antwortet in einem passenden Ton. Schöne Grüße aus Köln.
Модель понимает эмоции говорящего и отвечает подходящим тоном. Спасибо большое!
النموذج يفهم مشاعر المتحدث ويرد بنبرة مناسبة. شكرا جزيلا.
Emoji too: 😀 😢 👍🏽 ❤️ 👨‍👩‍👧 🎉 — and symbols like © ® ™ € £ ¥ ° ± × ÷ → ← ✓.
A speech language model listens to a question, understands the speaker's mood from the tone of voice, and
answers with words and a voice that fit the moment. When someone sounds anxious, it slows down and reassures;
when someone sounds excited, it shares the excitement. Researchers collect conversations, synthesize
expressive speech with controllable emotions, and filter the results automatically before training.
Evaluation covers spoken question answering, instruction following, emotion recognition and the quality of
the generated speech: naturalness, intelligibility, speaker similarity, latency and streaming stability.
The encoder is a Whisper-style transformer with two convolutions, thirty-two layers, twenty heads and a
final layer normalization. Rotary position embeddings rotate queries and keys; grouped-query attention shares
key and value heads; the feed-forward network uses a gated linear unit with a sigmoid-weighted activation.
Checkpoints are written to a temporary directory, synchronized to disk and renamed, so a crash at any moment
leaves the previous checkpoint loadable. Each rank saves its optimizer shard; the trainer state records the
step, the random generator, the loader cursor and the schedule. Resuming continues bit for bit.
Monday, Tuesday, Wednesday, Thursday, Friday, Saturday and Sunday; January, February, March, April, May,
June, July, August, September, October, November, December. Spring, summer, autumn and winter.
Weather report: cloudy in the morning with light rain, clearing in the afternoon; highs around 23 degrees.
Kitchen notes: boil the noodles for eight minutes, rinse with cold water, toss with sesame oil and scallions.
Travel: the train to Shanghai leaves at 07:45 from platform 12; the flight to Beijing boards at gate B27.
for (int i = 0; i < n; i++) { sum += weights[i] * inputs[i]; }  // accumulate in float, round once
import numpy as np; x = np.zeros((2, 3), dtype=np.float32); print(x.shape, x.sum())
SELECT id, name FROM speakers WHERE emotion = 'happy' ORDER BY duration DESC LIMIT 10;
{"messages": [{"role": "user", "content": [{"audio": "a.wav"}]}, {"role": "assistant", "content": "ok"}]}
模型首先把语音转换成离散的语音单元，然后用自回归的方式生成语音单元，最后通过声码器合成波形。
研究人员收集了大量的对话数据，并合成了带有情感的语音，用于训练和评估模型的共情能力。
春天来了，花儿都开了，小鸟在树上唱歌。夏天很热，我们去海边游泳。秋天的树叶变黄了。冬天下雪了。
北京、上海、广州和深圳都是中国的大城市。火车站、飞机场、医院、学校、图书馆和超市都在附近。
请问去火车站怎么走？一直往前走，然后在第二个路口向左转，大约十分钟就到了。非常感谢！
东京は日本の首都です。桜の季節はとても美しいです。電車はいつも時間通りに来ます。
서울은 한국의 수도입니다. 봄에는 벚꽃이 아름답고 가을에는 단풍이 아름답습니다.
"""


def build_base(vocab_size):
    tok = Tokenizer(models.BPE(dropout=None, unk_token=None, continuing_subword_prefix="", end_of_word_suffix="",
                               fuse_unk=False, byte_fallback=False, ignore_merges=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = BpeTrainer(vocab_size=vocab_size, min_frequency=1, show_progress=False, special_tokens=[],
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # Repeating lines with different weights gives the trainer frequencies to rank merges by.
    lines = TRAIN_TEXT.splitlines(keepends=True)
    tok.train_from_iterator([l for i, l in enumerate(lines) for _ in range(1 + i % 3)], trainer=trainer)
    for content, special in QWEN3_ADDED:
        tok.add_tokens([AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False,
                                   single_word=False)])
    return tok

# Qwen3's chat template (Qwen/Qwen3-8B tokenizer_config.json), so apply_chat_template renders the tiny LLM
# tokenizer's prompts as Qwen3's: what s2s chat's prompt (eval/prompt.c) is checked against.
QWEN3_CHAT_TEMPLATE = (
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0].role == 'system' %}\n"
    "        {{- messages[0].content + '\\n\\n' }}\n    {%- endif %}\n"
    "    {{- \"# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided "
    "with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n{%- else %}\n    {%- if messages[0].role == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n"
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}\n"
    "{%- for message in messages[::-1] %}\n    {%- set index = (messages|length - 1) - loop.index0 %}\n"
    "    {%- if ns.multi_step_tool and message.role == \"user\" and message.content is string and "
    "not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}\n"
    "        {%- set ns.multi_step_tool = false %}\n        {%- set ns.last_query_index = index %}\n    {%- endif %}\n"
    "{%- endfor %}\n{%- for message in messages %}\n    {%- if message.content is string %}\n"
    "        {%- set content = message.content %}\n    {%- else %}\n        {%- set content = '' %}\n    {%- endif %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n        {%- set reasoning_content = '' %}\n"
    "        {%- if message.reasoning_content is string %}\n"
    "            {%- set reasoning_content = message.reasoning_content %}\n        {%- else %}\n"
    "            {%- if '</think>' in content %}\n"
    "                {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1]"
    ".lstrip('\\n') %}\n                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}\n"
    "            {%- endif %}\n        {%- endif %}\n        {%- if loop.index0 > ns.last_query_index %}\n"
    "            {%- if loop.last or (not loop.last and reasoning_content) %}\n"
    "                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + "
    "'\\n</think>\\n\\n' + content.lstrip('\\n') }}\n            {%- else %}\n"
    "                {{- '<|im_start|>' + message.role + '\\n' + content }}\n            {%- endif %}\n"
    "        {%- else %}\n            {{- '<|im_start|>' + message.role + '\\n' + content }}\n        {%- endif %}\n"
    "        {%- if message.tool_calls %}\n            {%- for tool_call in message.tool_calls %}\n"
    "                {%- if (loop.first and content) or (not loop.first) %}\n                    {{- '\\n' }}\n"
    "                {%- endif %}\n                {%- if tool_call.function %}\n"
    "                    {%- set tool_call = tool_call.function %}\n                {%- endif %}\n"
    "                {{- '<tool_call>\\n{\"name\": \"' }}\n                {{- tool_call.name }}\n"
    "                {{- '\", \"arguments\": ' }}\n                {%- if tool_call.arguments is string %}\n"
    "                    {{- tool_call.arguments }}\n                {%- else %}\n"
    "                    {{- tool_call.arguments | tojson }}\n                {%- endif %}\n"
    "                {{- '}\\n</tool_call>' }}\n            {%- endfor %}\n        {%- endif %}\n"
    "        {{- '<|im_end|>\\n' }}\n    {%- elif message.role == \"tool\" %}\n"
    "        {%- if loop.first or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- content }}\n        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n    {%- if enable_thinking is defined and enable_thinking is false %}\n"
    "        {{- '<think>\\n\\n</think>\\n\\n' }}\n    {%- endif %}\n{%- endif %}"
)


def config_json(tok, eos, extra_special, chat_template=None):
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "additional_special_tokens": QWEN3_SPECIAL_LIST + extra_special,
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": eos,
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    } | ({"chat_template": chat_template} if chat_template else {})


def write_dir(tok, path, eos, extra_special, chat_template=None):
    os.makedirs(path, exist_ok=True)
    # Qwen's files spell these fields this way; `tokenizers` would write its defaults instead.
    d = json.loads(tok.to_str())
    d["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    d["model"]["continuing_subword_prefix"] = ""
    d["model"]["end_of_word_suffix"] = ""
    # Compact JSON keeps the TTS tokenizer (16,384 added tokens) small; HF reads either form.
    with open(os.path.join(path, "tokenizer.json"), "w") as f:
        json.dump(d, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump(config_json(tok, eos, extra_special, chat_template), f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(path, "special_tokens_map.json"), "w") as f:
        json.dump({"additional_special_tokens": QWEN3_SPECIAL_LIST + extra_special, "eos_token": eos,
                   "pad_token": "<|endoftext|>"}, f, indent=2, ensure_ascii=False)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "tiny"))
    ap.add_argument("--vocab", type=int, default=4096, help="target BPE vocabulary size (before added tokens)")
    args = ap.parse_args()

    llm = build_base(args.vocab)
    # OpenS2S adds these with tokenizer.add_special_tokens, so they are special and not normalized.
    llm.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in OPENS2S_LLM_ADDED])
    write_dir(llm, os.path.join(args.out, "tokenizer"), "<|im_end|>", OPENS2S_LLM_ADDED, QWEN3_CHAT_TEMPLATE)

    tts = build_base(args.vocab)
    # Speech units are ordinary added tokens (tokenizer.add_tokens: not special, normalized), so decoding
    # with skip_special_tokens keeps them.
    tts.add_tokens([AddedToken(f"<|audio_{i}|>", special=False, normalized=True) for i in range(N_AUDIO)])
    write_dir(tts, os.path.join(args.out, "tts-tokenizer"), "<|im_end|>", [])

    for name, tok in (("tokenizer", llm), ("tts-tokenizer", tts)):
        print(f"{name}: {tok.get_vocab_size(with_added_tokens=False)} BPE tokens, "
              f"{tok.get_vocab_size(with_added_tokens=True)} with added tokens")


if __name__ == "__main__":
    main()
