#!/usr/bin/env bash
# demo-data.sh OUT_DIR — a small synthetic empathetic speech corpus and the shards of every training stage
# (docs/demo-data.md). espeak-ng voices stand in for speakers, pitch / rate / loudness / pauses for emotions; the
# sentences and replies are launch/demo-sentences.tsv; speech units come from `s2s units` (k-means over log-mel)
# fitted on the assistant's voice; `s2s prep` makes the shards with the tiny tokenizers of configs/tiny/.
#
#   OUT_DIR/stage1[-valid]    align         stage 1: user speech -> reply, transcript (kl teacher), emotion label
#   OUT_DIR/stage2a[-valid]   tts_pretrain  stage 2a: text -> units in the assistant's voice
#   OUT_DIR/instruct[-valid]  instruct      stages 2b / 3: speech (or text) in -> text + speech units out
#   OUT_DIR/stage2b[-valid], OUT_DIR/stage3[-valid] -> instruct[-valid] (symlinks)
#
# Environment: S2S (the s2s binary, default build/s2s), DEMO_SPEAKERS (1..8, default 4), DEMO_SENTENCES (5..36,
# default 36), DEMO_K (unit codebook size, default 64), DEMO_SEED (k-means seed, default 1), DEMO_JOBS (parallel
# synthesis and prep workers, default nproc). Re-running with the same settings finds OUT_DIR/demo-data.json and
# returns at once; with other settings (or an interrupted run) it removes what it made and starts again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
if [ $# -ne 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  [ $# -eq 1 ] && exit 0 || exit 2
fi
OUT=$1
S2S=${S2S:-$repo/build/s2s}
case $S2S in /*) ;; *) S2S=$PWD/$S2S ;; esac
SPEAKERS=${DEMO_SPEAKERS:-4}
SENTENCES=${DEMO_SENTENCES:-36}
K=${DEMO_K:-64}
SEED=${DEMO_SEED:-1}
JOBS=${DEMO_JOBS:-$(nproc)}
TSV=$here/demo-sentences.tsv
TOK=$repo/configs/tiny/tokenizer
TTS_TOK=$repo/configs/tiny/tts-tokenizer

die() { echo "demo-data: $*" >&2; exit 1; }
for v in SPEAKERS SENTENCES K SEED JOBS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "DEMO_$v='${!v}' must be a non-negative integer"
done
[ "$SPEAKERS" -ge 1 ] && [ "$SPEAKERS" -le 8 ] || die "DEMO_SPEAKERS=$SPEAKERS must be 1..8"
[ "$K" -ge 2 ] && [ "$K" -le 16384 ] || die "DEMO_K=$K must be 2..16384 (the TTS tokenizer's <|audio_N|> tokens)"
[ "$JOBS" -ge 1 ] || JOBS=1
[ -x "$S2S" ] || die "no s2s binary at $S2S (build it, or set S2S)"
for tool in espeak-ng sox; do command -v $tool >/dev/null || die "$tool is missing (launch/deps.sh installs it)"; done

# ---- speakers and emotions ---------------------------------------------------------------------------------------
# speaker: espeak-ng voice+variant, base pitch (0-99), base rate (words per minute)
SPK_VOICE=(en-us+m3 en-gb+f3 en-gb-scotland+m1 en-us+f2 en-029+m5 en-gb-x-rp+f4 en-gb-x-gbclan+m2 en-us+f5)
SPK_PITCH=(45 60 40 70 35 55 50 65)
SPK_RATE=(165 160 150 175 160 155 170 165)
# The assistant's voice (all units are in it): one voice, so the TTS-LM has one speaker to learn.
ASSISTANT=(en-us+f4 55 160)
# emotion: pitch offset, rate offset, amplitude (espeak-ng default 100), extra pause between words (10 ms units)
EMOTIONS=(neutral happy sad angry surprised fearful)
declare -A EMO_PITCH=([neutral]=0 [happy]=15 [sad]=-15 [angry]=5 [surprised]=25 [fearful]=10)
declare -A EMO_RATE=([neutral]=0 [happy]=25 [sad]=-45 [angry]=35 [surprised]=10 [fearful]=50)
declare -A EMO_AMP=([neutral]=100 [happy]=115 [sad]=70 [angry]=140 [surprised]=120 [fearful]=85)
declare -A EMO_GAP=([neutral]=0 [happy]=0 [sad]=4 [angry]=0 [surprised]=1 [fearful]=2)
LABELS=$(IFS=,; echo "${EMOTIONS[*]}")

# ---- sentences ---------------------------------------------------------------------------------------------------
EMO=() USER=() REPLY=()
while IFS=$'\t' read -r e u r; do
  [[ -z $e || $e == \#* ]] && continue
  [[ -n ${EMO_PITCH[$e]+x} ]] || die "$TSV: emotion '$e' is not one of $LABELS"
  [[ -n $u && -n $r ]] || die "$TSV: a line for '$e' lacks its sentence or reply"
  [[ $u$r != *[\"\\]* ]] || die "$TSV: sentences must not hold double quotes or backslashes (they go into JSON as is)"
  EMO+=("$e") USER+=("$u") REPLY+=("$r")
done <"$TSV"
[ "$SENTENCES" -ge 5 ] && [ "$SENTENCES" -le ${#EMO[@]} ] ||
  die "DEMO_SENTENCES=$SENTENCES must be 5..${#EMO[@]} (every 5th sentence is held out for validation)"

# ---- up to date? -------------------------------------------------------------------------------------------------
sum() { sha256sum "$1" | cut -c1-64; }
STAMP="{\"speakers\": $SPEAKERS, \"sentences\": $SENTENCES, \"k\": $K, \"seed\": $SEED, \"script_sha256\": \"$(sum "$0")\", \"sentences_sha256\": \"$(sum "$TSV")\"}"
DIRS=(audio manifests units stage1 stage1-valid stage2a stage2a-valid instruct instruct-valid)
LINKS=(stage2b stage2b-valid stage3 stage3-valid)
if [ -f "$OUT/demo-data.json" ] && [ "$(head -n1 "$OUT/demo-data.json")" = "$STAMP" ]; then
  echo "demo-data: $OUT is up to date ($OUT/demo-data.json)"
  exit 0
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT/demo-data.json"
for d in "${DIRS[@]}" "${LINKS[@]}"; do rm -rf "${OUT:?}/$d"; done
mkdir -p "$OUT/audio/user" "$OUT/audio/tts" "$OUT/manifests" "$OUT/units"
t0=$(date +%s%N)
lap() { local ms=$((($(date +%s%N) - t0) / 1000000)); printf 'demo-data: %-48s %4d.%01d s\n' "$1" $((ms / 1000)) $((ms % 1000 / 100)); }

# ---- speech ------------------------------------------------------------------------------------------------------
# One job per line: voice, pitch, rate, amplitude, word gap, output, text; espeak-ng's 22.05 kHz to 16 kHz 16-bit
# mono with sox (the rate OpenS2S's audio is stored at; prep would resample too, but the files are the corpus),
# 4 dB down so that the loud emotions do not clip in resampling.
synth_one() {
  set -o pipefail
  local voice pitch rate amp gap out text
  IFS=$'\t' read -r voice pitch rate amp gap out text <<<"$1"
  espeak-ng -v "$voice" -p "$pitch" -s "$rate" -a "$amp" -g "$gap" --stdout "$text" |
    sox -V1 -t wav - -r 16000 -b 16 -c 1 "$out.tmp.wav" gain -4 && mv "$out.tmp.wav" "$out"
}
export -f synth_one
clamp() { local v=$1; ((v < $2)) && v=$2; ((v > $3)) && v=$3; echo "$v"; }
jobs_file=$OUT/audio/jobs.tsv
: >"$jobs_file"
for ((i = 0; i < SENTENCES; i++)); do
  n=$(printf %03d "$i")
  e=${EMO[$i]}
  for ((s = 0; s < SPEAKERS; s++)); do
    p=$(clamp $((SPK_PITCH[s] + EMO_PITCH[$e])) 0 99)
    r=$(clamp $((SPK_RATE[s] + EMO_RATE[$e])) 80 400)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${SPK_VOICE[$s]}" "$p" "$r" "${EMO_AMP[$e]}" "${EMO_GAP[$e]}" \
      "$OUT/audio/user/s${s}_$n.wav" "${USER[$i]}" >>"$jobs_file"
  done
  # the assistant says its reply (instruct, stage 2a) and, for stage 2a only, the user's sentence
  printf '%s\t%s\t%s\t100\t0\t%s\t%s\n' "${ASSISTANT[0]}" "${ASSISTANT[1]}" "${ASSISTANT[2]}" \
    "$OUT/audio/tts/reply_$n.wav" "${REPLY[$i]}" >>"$jobs_file"
  printf '%s\t%s\t%s\t100\t0\t%s\t%s\n' "${ASSISTANT[0]}" "${ASSISTANT[1]}" "${ASSISTANT[2]}" \
    "$OUT/audio/tts/user_$n.wav" "${USER[$i]}" >>"$jobs_file"
done
xargs -d '\n' -P "$JOBS" -n 1 bash -c 'synth_one "$1"' _ <"$jobs_file" || die "speech synthesis failed"
lap "speech: $(wc -l <"$jobs_file") utterances (espeak-ng + sox)"

# ---- raw manifests (audio paths relative to OUT_DIR) ---------------------------------------------------------------
# Every 5th sentence (i % 5 == 4) is held out: the emotions cycle with period 6 in the sentence file, so the held-out
# sentences cover all of them.
M=$OUT/manifests
for f in stage1 stage1-valid tts tts-valid instruct instruct-valid; do : >"$M/$f.raw.jsonl"; done
item() { printf '{"text": "%s", "audio": "%s", "speech_units": "", "spk_emb": ""}' "$1" "$2"; }
for ((i = 0; i < SENTENCES; i++)); do
  n=$(printf %03d "$i")
  v=$( ((i % 5 == 4)) && echo -valid || true)
  e=${EMO[$i]} u=${USER[$i]} r=${REPLY[$i]}
  reply_item=$(item "$r" "audio/tts/reply_$n.wav")
  for ((s = 0; s < SPEAKERS; s++)); do
    a=audio/user/s${s}_$n.wav
    printf '{"audio": "%s", "continuation": "%s", "transcript": "%s", "emotion": "%s"}\n' "$a" "$r" "$u" "$e" \
      >>"$M/stage1$v.raw.jsonl"
    printf '{"messages": [{"role": "user", "content": [%s]}, {"role": "assistant", "content": [%s]}]}\n' \
      "$(item "" "$a")" "$reply_item" >>"$M/instruct$v.raw.jsonl"
  done
  # text in, speech out (OpenS2S's text-to-speech instruction samples)
  printf '{"messages": [{"role": "user", "content": [%s]}, {"role": "assistant", "content": [%s]}]}\n' \
    "$(item "$u" "")" "$reply_item" >>"$M/instruct$v.raw.jsonl"
  printf '{"text": "%s", "audio": "audio/tts/reply_%s.wav"}\n{"text": "%s", "audio": "audio/tts/user_%s.wav"}\n' \
    "$r" "$n" "$u" "$n" >>"$M/tts$v.raw.jsonl"
done
mv "$M/stage1.raw.jsonl" "$M/stage1.jsonl"
mv "$M/stage1-valid.raw.jsonl" "$M/stage1-valid.jsonl"

# ---- speech units ------------------------------------------------------------------------------------------------
CB=$OUT/units/codebook.safetensors
"$S2S" units fit --out "$CB" --k "$K" --seed "$SEED" --audio-root "$OUT" --quiet "$M/tts.raw.jsonl"
for f in tts tts-valid instruct instruct-valid; do
  "$S2S" units encode --codebook "$CB" --audio-root "$OUT" "$M/$f.raw.jsonl" --out "$M/$f.jsonl" 2>/dev/null ||
    die "units encode $M/$f.raw.jsonl failed (rerun: $S2S units encode --codebook $CB --audio-root $OUT $M/$f.raw.jsonl --out /tmp/x.jsonl)"
done
mv "$M/tts.jsonl" "$M/stage2a.jsonl"
mv "$M/tts-valid.jsonl" "$M/stage2a-valid.jsonl"
"$S2S" units info "$CB" >"$OUT/units/codebook.txt"
lap "units: k $K fitted on the assistant's voice, encoded"

# ---- shards --------------------------------------------------------------------------------------------------------
for d in stage1 stage1-valid stage2a stage2a-valid instruct instruct-valid; do
  "$S2S" prep --manifest "$M/$d.jsonl" --tokenizer "$TOK" --tts-tokenizer "$TTS_TOK" --out "$OUT/$d" \
    --audio-root "$OUT" --emotion-labels "$LABELS" --jobs "$JOBS" --overwrite --quiet >"$OUT/$d.prep.log" ||
    die "s2s prep failed for $d: $(tail -n 3 "$OUT/$d.prep.log")"
  grep -q ', 0 skipped' "$OUT/$d.prep.log" || die "s2s prep skipped records of $d ($OUT/$d.prep.log)"
  echo "demo-data: $d: $(grep -o '[0-9]* kept ([^)]*)' "$OUT/$d.prep.log")"
done
for v in "" -valid; do
  ln -sfn "instruct$v" "$OUT/stage2b$v"
  ln -sfn "instruct$v" "$OUT/stage3$v"
done
lap "shards (s2s prep)"
rm -f "$jobs_file"
{
  echo "$STAMP"
  echo "{\"emotion_labels\": \"$LABELS\", \"codebook\": \"units/codebook.safetensors\", \"tokenizer\": \"$TOK\", \"tts_tokenizer\": \"$TTS_TOK\"}"
} >"$OUT/demo-data.json.tmp"
mv "$OUT/demo-data.json.tmp" "$OUT/demo-data.json"
echo "demo-data: done: $OUT"
