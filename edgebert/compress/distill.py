"""Knowledge distillation: train a (pruned) student classifier to match a teacher classifier.

Loss per batch (Hinton et al., 2015, plus optional intermediate-layer terms as in TinyBERT/MiniLM):

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
    + (1 - alpha) * cross-entropy(student, labels)
    + hidden_weight * MSE(student layer i output, teacher layer layer_map[i] output)
    + attention_weight * KL(teacher attention || student attention), same layer map

Attention maps are compared head by head. A student whose heads were pruned by edgebert records
which of the original heads each layer kept (``config.edgebert_pruning["heads"]``); each kept head
is matched to the teacher head it came from (the teacher's record, if it was pruned too, says where
that head sits now). Without a record the mapped layers must have the same number of heads.

The teacher runs in eval mode without gradients, its logits computed on the fly. The student with
the best dev accuracy (ties: higher agreement with the teacher, then lower KL to the teacher's
softened outputs) is restored at the end.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from edgebert.errors import CompressionError, ConfigError, TrainingError
from edgebert.models.specs import ArchSpec, get_path, get_spec

if TYPE_CHECKING:
    import torch

__all__ = ["default_distill_learning_rates", "default_layer_map", "distill", "epoch_seed", "learning_rates"]


# Distillation learning rate per family (a key of edgebert.train.finetune.FAMILY_LEARNING_RATES), encoder
# and head alike: a third of the family's encoder fine-tuning rate, since the student starts from fine-tuned
# weights and a trained head. Measured on MiniLM (compact BERT), together with select: kl and patience: 0:
# 1e-4 on both met the cpu goal in 5 of 5 SST-2 seeds, where finetune's rates (3e-4, head 3e-3) with
# select: agreement and patience 2 met it in 2 of 5, and 1e-4 with those two unchanged missed it on one of
# 2 seeds by 2.25 points (README "Distillation's learning rate"). Base-size BERT and ALBERT: the same third,
# not measured here (no base-size weights offline).
DISTILL_LEARNING_RATES = {"ALBERT": 1e-5, "compact BERT (hidden <= 512)": 1e-4, "base-size BERT": 1e-5}


def default_distill_learning_rates(config) -> tuple[float, float]:
    """(encoder, head) peak distillation learning rates for the family of the model with ``config``."""
    from edgebert.train.finetune import model_family

    body = DISTILL_LEARNING_RATES[model_family(config)]
    return body, body


def learning_rates(config, learning_rate: float | None = None,
                   head_learning_rate: float | None = None) -> tuple[float, float]:
    """(encoder, head) peak learning rates with the ones left unset (None) filled in for the model with
    ``config``: the encoder's from :func:`default_distill_learning_rates`, the head's equal to the
    encoder's (the head is trained already, unlike in fine-tuning)."""
    body = learning_rate or default_distill_learning_rates(config)[0]
    return body, head_learning_rate or body


def learning_rate_warning(config, learning_rate: float | None) -> str | None:
    """A note when an explicit distillation learning rate is above the fine-tuning rate of the student's
    family (``edgebert.train.default_learning_rates``), else None.

    A recipe's rates are absolute: 1e-4, a third of MiniLM's (compact BERT's) fine-tuning rate, is
    above what base-size BERT and ALBERT are fine-tuned at (3e-5). Leaving the rates unset picks each
    family's own (:data:`DISTILL_LEARNING_RATES`), which never warns. Nor does an ALBERT made by the
    ``albertize`` stage (its config says so): it starts from averaged, not fine-tuned, weights and is
    distilled at the rate of the BERT it came from."""
    from edgebert.compress import albertize
    from edgebert.train import default_learning_rates
    from edgebert.train.finetune import model_family

    if not learning_rate or getattr(config, albertize.RECORD_KEY, None):
        return None
    family_lr = default_learning_rates(config)[0]
    if learning_rate <= family_lr:
        return None
    family = model_family(config)
    return (f"distill learning_rate {learning_rate:g} is above the fine-tuning rate of {family} models "
            f"({family_lr:g}); a student that starts from fine-tuned weights usually distils at or below it "
            "(not measured on this family): if accuracy suffers, lower learning_rate in a recipe (--recipe FILE)")


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's row order and text perturbations.

    Non-negative (``random.Random`` draws the same for ``n`` and ``-n``) and distinct for every
    (seed, epoch) with 1 <= epoch <= 1000 (the most epochs allowed), so runs with different seeds
    never share an epoch's draws (seed + epoch would: seed 1's epoch 1 would be seed 0's epoch 2).
    Seeds 0, 1, 2, ... use blocks 0, 2, 4, ... of 1000 and seeds -1, -2, ... blocks 1, 3, ...; seed 0
    gives the epoch itself, as seed + epoch did.
    """
    block = 2 * seed if seed >= 0 else -2 * seed - 1
    return block * 1000 + epoch


def default_layer_map(student, teacher) -> list[int]:
    """Teacher layer index for each student layer.

    The teacher layers the student kept when it was pruned (``config.edgebert_pruning
    ["layers_kept"]``, written by ``drop_layers_``), else a uniform map whose last student layer
    maps to the last teacher layer (student i -> teacher ceil((i + 1) * n_teacher / n_student) - 1).
    """
    n_s, n_t = int(student.config.num_hidden_layers), int(teacher.config.num_hidden_layers)
    from edgebert.compress.prune import pruning_record

    kept = pruning_record(student).get("layers_kept")
    if kept and len(kept) == n_s and max(kept) < n_t:
        return [int(k) for k in kept]
    return [math.ceil((i + 1) * n_t / n_s) - 1 for i in range(n_s)]


def layer_map_problem(layer_map: list[int], student_layers: int, teacher_layers: int) -> str | None:
    """What is wrong with ``layer_map`` for these layer counts (one teacher layer per student layer), or None."""
    if len(layer_map) != student_layers or min(layer_map) < 0 or max(layer_map) >= teacher_layers:
        return (f"layer_map {layer_map} must name one teacher layer (0..{teacher_layers - 1}) for each of the "
                f"student's {student_layers} layers")
    return None


def _check_models(teacher, student, label_names, *, layer_map: list[int] | None = None, hidden_weight: float = 0.0,
                  attention_weight: float = 0.0) -> tuple[list[int], list[list[int] | None]]:
    for role, m in (("teacher", teacher), ("student", student)):
        if int(m.config.num_labels) != len(label_names):
            raise CompressionError(f"The {role} has {m.config.num_labels} outputs but there are "
                                   f"{len(label_names)} labels ({', '.join(label_names[:10])}).")
    if int(teacher.config.vocab_size) != int(student.config.vocab_size):
        raise CompressionError(f"Teacher and student vocabularies differ ({teacher.config.vocab_size} vs "
                               f"{student.config.vocab_size}); they must share one tokenizer.")
    n_s, n_t = int(student.config.num_hidden_layers), int(teacher.config.num_hidden_layers)
    layer_map = list(layer_map) if layer_map is not None else default_layer_map(student, teacher)
    problem = layer_map_problem(layer_map, n_s, n_t)
    if problem:
        raise CompressionError(f"{problem}.")
    if hidden_weight > 0 and teacher.config.hidden_size != student.config.hidden_size:
        raise CompressionError(
            f"hidden_weight={hidden_weight} needs equal hidden sizes, but the teacher has "
            f"{teacher.config.hidden_size} and the student {student.config.hidden_size} (pruning keeps the "
            "hidden size; a different architecture needs a learned projection, which edgebert does not add). "
            "Set hidden_weight: 0."
        )
    head_map: list[list[int] | None] = [None] * n_s
    if attention_weight > 0:
        head_map = _head_map(teacher, student, layer_map)
        for role, m in (("teacher", teacher), ("student", student)):
            kind = getattr(m.config, "position_embedding_type", "absolute") or "absolute"
            if kind != "absolute":
                raise CompressionError(f"attention_weight needs absolute position embeddings; the {role} "
                                       f"uses '{kind}'. Set attention_weight: 0.")
    return layer_map, head_map


def _head_map(teacher, student, layer_map: list[int]) -> list[list[int] | None]:
    """For each student layer, the positions of the teacher heads its heads are compared with
    (``None``: all of them, in order).

    A layer whose heads edgebert pruned records the original indices of the heads it kept
    (``config.edgebert_pruning["heads"]``, per distinct layer); each is compared with the teacher
    head of that original index (found through the teacher's own record if it was pruned too). A
    student layer without a record must have as many heads as its teacher layer (compared in order).
    """
    from edgebert.compress.prune import pruning_record

    s_spec, t_spec = get_spec(student), get_spec(teacher)
    s_rec, t_rec = pruning_record(student).get("heads", {}), pruning_record(teacher).get("heads", {})

    def recorded(model, spec, record, use) -> tuple[int, list[int] | None]:
        n = int(_attn(model, spec, use).num_attention_heads)
        heads = record.get(str(spec.layer_of_use(model, use)))
        return n, ([int(h) for h in heads] if heads is not None and len(heads) == n else None)

    out: list[list[int] | None] = []
    for i, t in enumerate(layer_map):
        (n_s, s_heads), (n_t, t_heads) = recorded(student, s_spec, s_rec, i), recorded(teacher, t_spec, t_rec, t)
        if s_heads is None:
            if n_s != n_t:
                raise CompressionError(
                    f"attention_weight needs the same heads in mapped layers, but student layer {i} has {n_s} "
                    f"and teacher layer {t} has {n_t}, and the student records no head pruning that says which "
                    "teacher heads its heads came from. Set attention_weight: 0."
                )
            out.append(None)
            continue
        t_heads = t_heads if t_heads is not None else list(range(n_t))
        missing = [h for h in s_heads if h not in t_heads]
        if missing:
            raise CompressionError(
                f"attention_weight needs a teacher head for every student head, but student layer {i} keeps "
                f"original heads {missing} that teacher layer {t} does not have (it has {t_heads}). Set "
                "attention_weight: 0, or distil from the model the student was pruned from."
            )
        positions = [t_heads.index(h) for h in s_heads]
        out.append(None if positions == list(range(n_t)) else positions)
    return out


def _attn(model, spec: ArchSpec, use: int):
    return spec.layer_part(model, "attn_module", spec.layer_of_use(model, use))


@contextmanager
def _attention_probe(model, spec: ArchSpec):
    """Capture the query/key projections of every layer use; ``probs(use, mask)`` rebuilds the
    attention distribution (batch, heads, seq, seq) from them.

    Rebuilt rather than requested with ``output_attentions``: transformers 5 returns no attention
    weights under its default SDPA kernel, and this works the same in every version.
    """
    import torch

    calls: dict[str, list] = {"query": [], "key": []}
    handles = []
    for layer in spec.layer_modules(model):
        for part in ("query", "key"):
            module = get_path(layer, getattr(spec, part))
            handles.append(module.register_forward_hook(
                lambda _m, _args, out, part=part: calls[part].append(out)))

    def probs(use: int, mask: torch.Tensor) -> torch.Tensor:
        attn = _attn(model, spec, use)
        q, k = calls["query"][use], calls["key"][use]  # (batch, seq, heads * head_size)
        b, s, _ = q.shape
        h, d = int(attn.num_attention_heads), int(attn.attention_head_size)
        q = q.view(b, s, h, d).transpose(1, 2)
        k = k.view(b, s, h, d).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)).float() / math.sqrt(d)  # (batch, heads, seq, seq)
        # a large finite negative, not -inf: log-probabilities of masked keys stay finite
        scores = scores.masked_fill(mask[:, None, None, :] == 0, torch.finfo(torch.float32).min / 2)
        return torch.log_softmax(scores, dim=-1)

    try:
        yield calls, probs
    finally:
        for h in handles:
            h.remove()


def _heads_at(log_probs, heads: list[int] | None):
    """The attention maps (batch, heads, seq, seq) of the heads at ``heads`` (``None``: all)."""
    return log_probs if heads is None else log_probs[:, heads]


def _agreement(a, b) -> float:
    return float((a.argmax(-1) == b.argmax(-1)).mean()) if len(a) else 0.0


def _soft_kl(student_logits, teacher_logits, temperature: float) -> float:
    """Mean KL(teacher || student) of the temperature-softened outputs (no T^2 factor)."""
    import torch
    import torch.nn.functional as F

    s = F.log_softmax(torch.as_tensor(student_logits) / temperature, -1)
    t = F.log_softmax(torch.as_tensor(teacher_logits) / temperature, -1)
    return float(F.kl_div(s, t, log_target=True, reduction="batchmean"))


def distill(teacher, student, tokenizer, train_split, dev_split, label_names: list[str], *,
            temperature: float = 2.0, alpha: float = 0.5, hidden_weight: float = 0.0, attention_weight: float = 0.0,
            layer_map: list[int] | None = None, epochs: int = 3, learning_rate: float | None = None,
            head_learning_rate: float | None = None, batch_size: int = 32, max_length: int = 128,
            warmup_ratio: float = 0.1, weight_decay: float = 0.01, max_grad_norm: float = 1.0, seed: int = 0,
            patience: int = 2, select: str = "accuracy", augment: int = 0,
            progress: bool = False) -> dict[str, Any]:
    """Train ``student`` in place to imitate ``teacher`` (both classifiers over ``label_names``).

    The loss weights (``temperature``, ``alpha``, ``hidden_weight``, ``attention_weight``, ``layer_map``),
    the optimisation (``epochs`` ... ``patience``), the epoch kept (``select``) and the transfer set
    (``augment``) are described by the recipe stage's config (:class:`edgebert.stages.distill.DistillConfig`);
    ``None`` learning rates pick the student family's (:func:`learning_rates`).

    Splits hold labels indexed in ``label_names`` order. Returns ``history`` (per epoch: losses,
    dev metrics, agreement with the teacher), the dev metrics of the teacher and of the student
    before and after, the layer map and the learning rates used.
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from edgebert.data import collate_batches
    from edgebert.evaluation import predict_logits
    from edgebert.metrics import classification_metrics
    from edgebert.train.finetune import _adamw, _param_groups

    config = {"temperature": temperature, "alpha": alpha, "hidden_weight": hidden_weight,
              "attention_weight": attention_weight, "layer_map": None if layer_map is None else list(layer_map),
              "epochs": epochs,
              "learning_rate": learning_rate, "head_learning_rate": head_learning_rate, "batch_size": batch_size,
              "max_length": max_length, "warmup_ratio": warmup_ratio, "weight_decay": weight_decay,
              "max_grad_norm": max_grad_norm, "seed": seed, "patience": patience, "select": select,
              "augment": augment}
    label_names = [str(n) for n in label_names]
    selection_key(select, 0.0, 0.0, 0.0)  # an unknown select fails here, not after the first epoch
    if len(train_split) == 0 or len(dev_split) == 0:
        raise CompressionError(f"Distillation needs training and dev examples; got {len(train_split)} "
                               f"training and {len(dev_split)} dev rows.")
    layer_map, head_map = _check_models(teacher, student, label_names, layer_map=layer_map,
                                        hidden_weight=hidden_weight, attention_weight=attention_weight)
    s_spec, t_spec = get_spec(student), get_spec(teacher)
    body_lr, head_lr = learning_rates(student.config, learning_rate, head_learning_rate)
    trainable = [p for p in student.parameters() if p.requires_grad]
    if not trainable:
        raise TrainingError("Nothing to train: every parameter of the student is frozen.")

    torch.manual_seed(seed)
    s_device, t_device = next(student.parameters()).device, next(teacher.parameters()).device
    teacher_was_training = teacher.training
    teacher.eval()
    T = float(temperature)

    def evaluate(model) -> tuple[dict[str, Any], Any]:
        logits = predict_logits(model, tokenizer, dev_split, batch_size=max(batch_size, 64),
                                max_length=max_length)
        return classification_metrics(dev_split.labels, logits.argmax(-1), label_names), logits

    teacher_metrics, teacher_logits = evaluate(teacher)
    before, before_logits = evaluate(student)
    before["agreement"] = _agreement(before_logits, teacher_logits)
    before["kl_to_teacher"] = _soft_kl(before_logits, teacher_logits, T)

    optimizer = _adamw(_param_groups(student, s_spec, body_lr, head_lr, weight_decay), s_device.type)
    mask_token = getattr(tokenizer, "mask_token", None)
    rows_per_epoch = len(train_split) * (1 + augment)
    steps_per_epoch = math.ceil(rows_per_epoch / batch_size)
    total_steps = steps_per_epoch * epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * total_steps), total_steps)
    need_hidden, need_attention = hidden_weight > 0, attention_weight > 0
    # The teacher is frozen and in eval mode: with logit-only losses its logits on each epoch's
    # transfer set are computed up front by batched inference (and reused across epochs when there
    # is no augmentation) instead of by a forward pass inside every training step.
    cache_logits = not (need_hidden or need_attention)
    cached = transfer = None

    history: list[dict[str, Any]] = []
    best: tuple[tuple[float, float, float], int, dict] | None = None
    since_best, step = 0, 0
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        student.train()
        sums = {"loss": 0.0, "soft": 0.0, "hard": 0.0, "hidden": 0.0, "attention": 0.0}
        seen = 0
        if transfer is None or augment:
            transfer = _transfer_set(train_split, mask_token, epoch, augment=augment, seed=seed)
            if cache_logits:
                cached = torch.from_numpy(predict_logits(teacher, tokenizer, transfer,
                                                         batch_size=max(batch_size, 64),
                                                         max_length=max_length, progress=progress))
        batches = collate_batches(transfer, tokenizer, batch_size=batch_size, max_length=max_length,
                                  shuffle=True, seed=epoch_seed(seed, epoch), sort_by_length=True)
        bar = tqdm(batches, total=steps_per_epoch, desc=f"distil {epoch}/{epochs}", unit="batch",
                   disable=not progress, leave=False)
        for inputs, labels, rows in bar:
            mask = inputs.get("attention_mask")
            if mask is None:
                mask = torch.ones(inputs["input_ids"].shape, dtype=torch.long)
            if cached is None:
                with _probe(teacher, t_spec, need_attention) as (_, t_probs), torch.no_grad():
                    t_out = teacher(**{k: v.to(t_device) for k, v in inputs.items()},
                                    output_hidden_states=need_hidden)
                    t_log_att = ([_heads_at(t_probs(t, mask.to(t_device)), heads).to(s_device)
                                  for t, heads in zip(layer_map, head_map)] if need_attention else None)
                t_logits = t_out.logits.float().to(s_device)
            else:
                t_logits = cached[rows].to(s_device)
            with _probe(student, s_spec, need_attention) as (_, s_probs):
                s_out = student(**{k: v.to(s_device) for k, v in inputs.items()}, output_hidden_states=need_hidden)
                s_log_att = [s_probs(i, mask.to(s_device)) for i in range(len(layer_map))] if need_attention else None
            s_logits = s_out.logits.float()
            labels = labels.to(s_device)
            soft = F.kl_div(F.log_softmax(s_logits / T, -1), F.log_softmax(t_logits / T, -1),
                            log_target=True, reduction="batchmean") * T * T
            labelled = labels >= 0  # augmented copies carry no label (-1): soft loss only
            hard = (F.cross_entropy(s_logits[labelled], labels[labelled]) if bool(labelled.any())
                    else torch.zeros((), device=s_device))
            loss = alpha * soft + (1 - alpha) * hard
            m = mask.to(s_device).float()  # (batch, seq): 1 on real tokens
            hidden = torch.zeros((), device=s_device)
            if need_hidden:
                for i, t in enumerate(layer_map):  # hidden_states[0] is the embedding output
                    diff = (s_out.hidden_states[i + 1].float() - t_out.hidden_states[t + 1].float().to(s_device))
                    hidden = hidden + (diff.pow(2).mean(-1) * m).sum() / m.sum()
                hidden = hidden / len(layer_map)
                loss = loss + hidden_weight * hidden
            attention = torch.zeros((), device=s_device)
            if need_attention:
                for s_log, t_log in zip(s_log_att, t_log_att):
                    kl = F.kl_div(s_log, t_log, log_target=True, reduction="none").sum(-1)  # (b, heads, seq)
                    attention = attention + (kl.mean(1) * m).sum() / m.sum()
                attention = attention / len(layer_map)
                loss = loss + attention_weight * attention
            if not torch.isfinite(loss):
                raise TrainingError(f"Distillation loss became {loss.item()} at step {step} (epoch {epoch}). "
                                    f"Lower the learning rate (now {body_lr:g} / head {head_lr:g}).")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            n = int(labels.shape[0])
            seen += n
            for key, value in (("loss", loss), ("soft", soft), ("hard", hard), ("hidden", hidden),
                               ("attention", attention)):
                sums[key] += float(value.detach()) * n
            bar.set_postfix(loss=f"{sums['loss'] / seen:.4f}")
        metrics, logits = evaluate(student)
        agreement = _agreement(logits, teacher_logits)
        dev_kl = _soft_kl(logits, teacher_logits, T)
        history.append({
            "epoch": epoch, "step": step,
            "train_loss": sums["loss"] / seen, "soft_loss": sums["soft"] / seen, "hard_loss": sums["hard"] / seen,
            "hidden_loss": sums["hidden"] / seen if need_hidden else None,
            "attention_loss": sums["attention"] / seen if need_attention else None,
            "dev_accuracy": metrics["accuracy"], "dev_macro_f1": metrics["macro_f1"], "dev_agreement": agreement,
            "dev_kl": dev_kl,
        })
        if progress:
            tqdm.write(f"epoch {epoch}: loss {history[-1]['train_loss']:.4f}, dev accuracy "
                       f"{metrics['accuracy']:.4f}, agreement with teacher {agreement:.4f}")
        key = selection_key(select, metrics["accuracy"], agreement, dev_kl)
        if best is None or key > best[0]:
            state = {k: v.detach().to("cpu", copy=True) for k, v in student.state_dict().items()}
            best, since_best = (key, epoch, state), 0
        else:
            since_best += 1
        if patience and since_best >= patience:
            break

    assert best is not None
    student.load_state_dict(best[2])
    student.eval()
    teacher.train(teacher_was_training)
    after, after_logits = evaluate(student)
    after["agreement"] = _agreement(after_logits, teacher_logits)
    after["kl_to_teacher"] = _soft_kl(after_logits, teacher_logits, T)
    return {
        "history": history,
        "best_epoch": best[1],
        "layer_map": layer_map,
        "head_map": head_map if need_attention else None,  # teacher head positions per student layer (None: all)
        "teacher": teacher_metrics,
        "student_before": before,
        "student": after,
        "learning_rate": body_lr,
        "head_learning_rate": head_lr,
        "optimizer_steps": step,
        "transfer_rows_per_epoch": rows_per_epoch,
        "teacher_logits_cached": cache_logits,
        "seconds": round(time.perf_counter() - t0, 2),
        "config": config,
    }


def selection_key(select: str, accuracy: float, agreement: float, kl: float) -> tuple[float, float, float]:
    """What ``distill(select=...)`` compares between epochs (larger is better): the chosen measure
    first, then the others (accuracy / agreement: the other one, then the lower KL to the teacher, as
    small dev sets tie on the first two; kl: agreement, then accuracy)."""
    if select == "accuracy":
        return accuracy, agreement, -kl
    if select == "agreement":
        return agreement, accuracy, -kl
    if select == "kl":
        return -kl, agreement, accuracy
    raise ConfigError(f"distill select must be 'accuracy', 'agreement' or 'kl', got '{select}'")


def _transfer_set(train_split, mask_token: str | None, epoch: int, *, augment: int, seed: int):
    """The training split plus ``augment`` perturbed copies of it, seeded by ``seed`` and the epoch
    (label -1: no hard loss)."""
    if not augment:
        return train_split
    from edgebert.compress.augment import augment_texts
    from edgebert.data import Split

    rows_seed = epoch_seed(seed, epoch)
    pairs = train_split.text_pairs
    # sentence pairs: perturb both sides word by word but never cut them to an n-gram
    copies = augment_texts(train_split.texts, augment, mask_token=mask_token, seed=rows_seed,
                           p_ngram=0.0 if pairs is not None else 0.25)
    texts = list(train_split.texts) + [t for _, t in copies]
    labels = list(train_split.labels) + [-1] * len(copies)
    if pairs is not None:
        other = augment_texts(pairs, augment, mask_token=mask_token, seed=rows_seed + 500, p_ngram=0.0)
        pairs = list(pairs) + [t for _, t in other]
    return Split(texts=texts, labels=labels, text_pairs=pairs)


@contextmanager
def _probe(model, spec: ArchSpec, active: bool):
    """:func:`_attention_probe` when attention matching is on, else nothing."""
    if not active:
        yield None, None
        return
    with _attention_probe(model, spec) as probe:
        yield probe
