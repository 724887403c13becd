#!/usr/bin/env python3
"""check_hf_trainer_semantics.py — tests/train/torch_train_ref.py's optimiser semantics against the real
transformers 4.51 Trainer (the version OpenS2S pins), on the OmniSpeech rendering and a tiny shard.

    python3 -m venv --system-site-packages /work/venv451 && /work/venv451/bin/pip install transformers==4.51.0
    /work/venv451/bin/python tests/train/check_hf_trainer_semantics.py [--s2s build/s2s] [--steps 4]

Skips (exit 0, with a message) unless transformers is 4.51.x. Checks, printing what it finds:
1. Trainer.create_optimizer() groups the trainable parameters exactly as the script's `hf` no-decay rule does
   (prints the no-decay list), with torch.optim.AdamW and the TrainingArguments' lr / betas / eps / decay.
2. Trainer.create_scheduler() gives, for linear, cosine, constant and constant_with_warmup with warm-up, the lr
   the script's lr_lambda gives at every optimizer step (lr 0 at step 0 with warm-up).
3. Trainer.train() for K steps with gradient accumulation 2 (micro-batches of unequal token counts), clipping
   and warm-up, on a model whose forward returns OpenS2S's micro-batch mean loss and takes no
   num_items_in_batch, leaves the weights the script leaves with --loss-norm micro_mean --dtype f32, and logs the
   same lr and grad_norm per step. Tolerance: max |hf - ref| / max |ref| <= 1e-6 per tensor.
The model is the s2s init tiny model (configs/tiny/model.json) on an instruct shard from make_shards.
"""
import argparse
import os
import shutil
import sys
import tempfile
import types

import transformers

if not transformers.__version__.startswith("4.51."):
    print(f"check_hf_trainer_semantics: SKIPPED: needs transformers 4.51.x, found {transformers.__version__} "
          f"(run it with /work/venv451/bin/python)")
    sys.exit(0)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_train_ref as R  # noqa: E402

TOL = 1e-6
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAILED:", what)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m = np.abs(b).max()
    return np.abs(a - b).max() / m if m > 0 else np.abs(a - b).max()


class SeqTrainer(Trainer):
    def _get_train_sampler(self, *args, **kwargs):  # micro-batches in dataset order, as the plan lists them
        return torch.utils.data.SequentialSampler(self.train_dataset)


class Log(TrainerCallback):
    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "grad_norm" in logs:
            self.logs.append(dict(logs))


def hf_model(model_dir, samples, kind, micro):
    """The rendering in f32 whose forward(idx) returns OpenS2S's loss of pre-collated micro-batch idx:
    w_llm * mean CE_llm + w_tts * mean CE_tts (+ the dummy TTS pass times 0), like OmniSpeechModel.forward —
    no **kwargs, so 4.51's Trainer divides it by gradient_accumulation_steps."""
    m = R.load_model(model_dir, torch.float32)
    R.set_trainable(m, R.DEFAULT_FROZEN[kind])
    batches = [R.collate([samples[i] for i in mb], kind, m.cfg) for mb in micro]

    def forward(self, idx):
        p = R.forward(self, batches[int(idx.reshape(-1)[0])], kind)
        loss = 0
        if p["s_llm"] is not None and p["n_llm"] > 0:
            loss = loss + p["s_llm"] / p["n_llm"]
        if p["s_tts"] is not None and p["n_tts"] > 0:
            loss = loss + p["s_tts"] / p["n_tts"]
        if p["zero"] is not None:
            loss = loss + p["zero"]
        return {"loss": loss}

    m.forward = types.MethodType(forward, m)
    return m


def targs(out, **kw):
    base = dict(output_dir=out, use_cpu=True, report_to="none", save_strategy="no", logging_steps=1,
                disable_tqdm=True, per_device_train_batch_size=1, dataloader_num_workers=0,
                remove_unused_columns=False, seed=0)
    base.update(kw)
    return TrainingArguments(**base)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--s2s", default=os.path.join(R.ROOT, "build", "s2s"))
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    tmp = tempfile.mkdtemp(prefix="s2s_hf451_")
    try:
        run(a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failures")
        sys.exit(1)
    print("ok")


def run(a, tmp):
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    model_dir = R.init_model(os.path.join(tmp, "model"), seed=1, s2s=a.s2s)
    samples, kind = R.read_shard(R.make_shards(os.path.join(tmp, "data"), "instruct", 8, seed=2, s2s=a.s2s))
    K, GA = a.steps, 2
    # Unequal micro-batches (1 and 3 samples; each step its own) so micro_mean differs from tokens.
    # The last step holds only text->text samples (3, 7: no audio, no units): the bridges llm2tts / llm_ln /
    # spk2tts / spk_ln get no gradient at all (grad None), and torch's AdamW skips them that step.
    plan = [[[(2 * k) % 8], [(2 * k + 1) % 8, (2 * k + 4) % 8, (2 * k + 5) % 8]] for k in range(K - 1)]
    plan.append([[3], [7]])
    micro = [mb for st in plan for mb in st]
    hp = dict(lr=3e-3, warmup=2, wd=0.05, betas=(0.9, 0.98), eps=1e-6, clip=0.5)

    # 1. decay groups
    m = hf_model(model_dir, samples, kind, micro)
    tr = SeqTrainer(model=m, args=targs(os.path.join(tmp, "o1"), learning_rate=hp["lr"], weight_decay=hp["wd"],
                                        adam_beta1=hp["betas"][0], adam_beta2=hp["betas"][1],
                                        adam_epsilon=hp["eps"]),
                    train_dataset=[{"idx": torch.tensor(i)} for i in range(len(micro))])
    opt = tr.create_optimizer()
    name = {id(p): n for n, p in m.named_parameters()}
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    hf_decay = {name[id(p)] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    hf_nodecay = {name[id(p)] for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    mine_nd = set(R.hf_no_decay_names(m)) & trainable
    print(f"optimizer: {type(opt).__name__}, groups {[(len(g['params']), g['weight_decay']) for g in opt.param_groups]}"
          f", lr {opt.defaults['lr']}, betas {opt.defaults['betas']}, eps {opt.defaults['eps']}")
    print("no decay (Trainer.create_optimizer):", sorted(hf_nodecay))
    check(type(opt) is torch.optim.AdamW, f"optimizer is {type(opt)}")
    check(hf_nodecay == mine_nd, f"no-decay sets differ: {sorted(hf_nodecay ^ mine_nd)}")
    check(hf_decay | hf_nodecay == trainable and not hf_decay & hf_nodecay, "groups do not partition the trainable")
    # get_decay_parameter_names walks every module's own parameters, so a tied lm_head appears under its alias
    # name too (tts_lm_model.lm_head.weight); create_optimizer iterates named_parameters(), which lists the tied
    # tensor once, as tts_lm_model.model.embed_tokens.weight (decayed).
    names = {n for n, _ in m.named_parameters()}
    dec = set(tr.get_decay_parameter_names(m))
    print("get_decay_parameter_names beyond named_parameters():", sorted(dec - names))
    check(dec & names == names - set(R.hf_no_decay_names(m)),
          "get_decay_parameter_names differs from the complement of hf_no_decay_names (all parameters)")
    check(opt.defaults["betas"] == hp["betas"] and opt.defaults["eps"] == hp["eps"], "AdamW hyper-parameters")

    # 2. schedules
    N, W = 12, 3
    for sched in ("linear", "cosine", "constant", "constant_with_warmup"):
        m2 = torch.nn.Linear(2, 2)
        t2 = Trainer(model=m2, args=targs(os.path.join(tmp, "o2"), learning_rate=hp["lr"], warmup_steps=W,
                                          lr_scheduler_type=sched, max_steps=N))
        t2.create_optimizer_and_scheduler(num_training_steps=N)
        lam = R.lr_lambda(sched, W, N)
        got, want = [], []
        for k in range(N + 1):
            got.append(t2.optimizer.param_groups[0]["lr"])
            want.append(hp["lr"] * lam(k))
            t2.optimizer.step()
            t2.lr_scheduler.step()
        e = max(abs(g - w) for g, w in zip(got, want))
        check(e <= 1e-15 * hp["lr"] * 10, f"{sched}: lr differs by {e:.3g}")
        ratios = " ".join(f"{g / hp['lr']:.4f}" for g in got)
        print(f"{sched:21s} lr/lr0 per step: {ratios}  (max diff {e:.2g})")

    # 3. Trainer.train vs the script
    m = hf_model(model_dir, samples, kind, micro)
    log = Log()
    tr = SeqTrainer(model=m, args=targs(os.path.join(tmp, "o3"), learning_rate=hp["lr"], weight_decay=hp["wd"],
                                        adam_beta1=hp["betas"][0], adam_beta2=hp["betas"][1], adam_epsilon=hp["eps"],
                                        max_grad_norm=hp["clip"], warmup_steps=hp["warmup"],
                                        lr_scheduler_type="linear", max_steps=K, gradient_accumulation_steps=GA),
                    train_dataset=[{"idx": torch.tensor(i)} for i in range(len(micro))], callbacks=[log])
    print("Trainer.model_accepts_loss_kwargs:", tr.model_accepts_loss_kwargs)
    check(tr.model_accepts_loss_kwargs is False, "the model should not accept loss kwargs (no **kwargs)")
    tr.train()
    hf_w = {n: p.detach().clone() for n, p in m.named_parameters()}

    ref = R.load_model(model_dir, torch.float32)
    res = R.train(ref, samples, kind, plan, lr=hp["lr"], warmup_steps=hp["warmup"], schedule="linear",
                  total_steps=K, weight_decay=hp["wd"], betas=hp["betas"], eps=hp["eps"], clip=hp["clip"],
                  no_decay="hf", loss_norm="micro_mean", log=lambda s: None)
    ref_w = {n: p.detach().clone() for n, p in ref.named_parameters()}
    init = R.load_model(model_dir, torch.float32)
    init_w = {n: p.detach() for n, p in init.named_parameters()}
    worst, wname, moved = 0.0, "", 0
    for n in ref_w:
        e = rel(hf_w[n].numpy(), ref_w[n].numpy())
        moved += int(not torch.equal(ref_w[n], init_w[n]))
        if e > worst:
            worst, wname = e, n
        check(e <= TOL, f"weights {n}: relative difference {e:.3g}")
    # and the update itself (weights minus initial), which is what the optimiser produced
    worst_u = max(rel((hf_w[n] - init_w[n]).numpy(), (ref_w[n] - init_w[n]).numpy())
                  for n in ref_w if not torch.equal(ref_w[n], init_w[n]))
    print(f"Trainer.train {K} steps x GA {GA}: weights max rel diff {worst:.3g} ({wname}); updates max rel diff "
          f"{worst_u:.3g}; {moved} of {len(ref_w)} tensors moved")
    check(worst_u <= 1e-4, f"updates differ by {worst_u:.3g}")
    # Sensitivity: --none-grads zero (step the grad-None bridges with a zero gradient) must miss the Trainer.
    z = R.load_model(model_dir, torch.float32)
    R.train(z, samples, kind, plan, lr=hp["lr"], warmup_steps=hp["warmup"], schedule="linear", total_steps=K,
            weight_decay=hp["wd"], betas=hp["betas"], eps=hp["eps"], clip=hp["clip"], no_decay="hf",
            loss_norm="micro_mean", none_grads="zero", log=lambda s: None)
    zd = {n: rel(p.detach().numpy(), hf_w[n].numpy()) for n, p in z.named_parameters()}
    off = sorted(n for n, e in zd.items() if e > TOL)
    print(f"mutant --none-grads zero: {len(off)} tensors off the Trainer ({off}), max {max(zd.values()):.3g}")
    check(set(off) == {"llm2tts.weight", "llm_ln.weight", "llm_ln.bias", "tts_lm_model.spk2tts.weight",
                       "tts_lm_model.spk_ln.weight", "tts_lm_model.spk_ln.bias"},
          "the grad-None step should touch exactly the bridges")
    # Sensitivity: tokens normalisation differs from the Trainer's micro_mean on unequal micro-batches.
    t = R.load_model(model_dir, torch.float32)
    R.train(t, samples, kind, plan, lr=hp["lr"], warmup_steps=hp["warmup"], schedule="linear", total_steps=K,
            weight_decay=hp["wd"], betas=hp["betas"], eps=hp["eps"], clip=hp["clip"], no_decay="hf",
            loss_norm="tokens", log=lambda s: None)
    td = max(rel(p.detach().numpy(), hf_w[n].numpy()) for n, p in t.named_parameters())
    print(f"mutant --loss-norm tokens: max rel diff {td:.3g} from the Trainer")
    check(td > 10 * TOL, "tokens normalisation should differ from the Trainer's micro_mean")
    for k, (h, r) in enumerate(zip(log.logs, res["steps"])):
        print(f"  step {k}: lr hf {h['learning_rate']:.6g} ref {r['lr']:.6g}; grad_norm hf {h['grad_norm']:.7g} "
              f"ref {r['grad_norm']:.7g}; loss hf {h['loss']} ref {r['loss']:.6f}")
        check(abs(h["learning_rate"] - r["lr"]) <= 1e-12, f"step {k}: lr {h['learning_rate']} vs {r['lr']}")
        check(abs(h["grad_norm"] - r["grad_norm"]) <= 1e-5 * r["grad_norm"], f"step {k}: grad_norm")
        check(abs(h["loss"] - r["loss"]) <= 1e-4 + 1e-4 * abs(r["loss"]), f"step {k}: loss (HF rounds to 4 digits)")
    check(len(log.logs) == K, f"{len(log.logs)} logged steps, expected {K}")
    check(res["steps"][0]["lr"] == 0.0, "step 0 with warm-up must use lr 0")


if __name__ == "__main__":
    main()
