"""``OVCLIP``: an open_clip ViT with dense image features and a trainable text encoder.

* Builds any open_clip ViT by name + ``pretrained`` (tag or local file), or from
  an explicit ``model_cfg`` (``open_clip.CLIP`` kwargs, e.g. the tiny model of
  the synthetic benchmark); ``pretrained=None`` gives random weights.
* Image side: dense patch embeddings in the joint space by one of the paths of
  :mod:`ovbench.models.clip.dense` (``dense=``): ``'maskclip'`` (MaskCLIP's: the value
  path replaces the last block's attention, residual and MLP kept), ``'value'`` (the
  value path alone, the core of SCLIP/ClearCLIP), ``'last'`` (plain final tokens) or
  ``'window<k>'`` (local-window inference); intermediate block outputs on request; any
  input size (the position embeddings are bicubically interpolated to the patch grid).
* Text side: a *trainable* encoder (unlike MMSeg's ``CLIPTextEncoder``, which
  freezes itself under ``no_grad``), prompt templates averaged per class, and
  class embeddings cached when, and only when, no text-side parameter trains.
* Fine-tuning: ``peft=dict(type=...)`` applies an :mod:`ovbench.peft` method.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ovbench.models.clip.dense import check_dense_mode, dense_tokens, global_embedding, project, run_blocks
from ovbench.models.clip.templates import resolve_templates
from ovbench.peft import apply_peft, get_peft_method, merge_peft
from ovbench.peft.base import encoder_of_param

_SAMPLE = 16  # values per parameter in the text cache's key (see OVCLIP.text_weights_version)


def _value_samples(params: Sequence[torch.Tensor]) -> List[float]:
    """Per parameter, the sum of about :data:`_SAMPLE` evenly strided values: cheap (one transfer from
    the device for all of them), and changed by any swap of a whole tensor for other weights."""
    if not params:
        return []
    flats = [p.detach().reshape(-1) for p in params]
    return torch.stack([f[:: max(1, f.numel() // _SAMPLE)].sum().float() for f in flats]).tolist()


def build_open_clip(model_name: Optional[str] = "ViT-B-16", pretrained: Optional[str] = None,
                    model_cfg: Optional[Dict[str, Any]] = None, device: Any = "cpu") -> nn.Module:
    """An open_clip CLIP model (random weights when ``pretrained`` is None)."""
    import open_clip

    if model_cfg is not None:
        model = open_clip.CLIP(**model_cfg).to(device)
        if pretrained:
            open_clip.load_checkpoint(model, pretrained)
        return model
    return open_clip.create_model(model_name, pretrained=pretrained or None, device=device)


class OVCLIP(nn.Module):
    def __init__(
        self,
        model_name: Optional[str] = "ViT-B-16",
        pretrained: Optional[str] = None,
        model_cfg: Optional[Dict[str, Any]] = None,
        peft: Any = None,
        templates: Any = "single",
        dense: str = "maskclip",
        out_indices: Sequence[int] = (),
        normalize: bool = True,
    ) -> None:
        super().__init__()
        import open_clip

        check_dense_mode(dense, "OVCLIP.dense")
        self.clip = build_open_clip(model_name, pretrained, model_cfg)
        if not hasattr(self.clip, "visual") or not hasattr(self.clip.visual, "transformer"):
            raise TypeError(f"OVCLIP: {model_name} is not a ViT CLIP model")
        ctx = getattr(self.clip, "context_length", 77)
        self.tokenizer = (open_clip.get_tokenizer(model_name) if model_cfg is None
                          else open_clip.tokenizer.SimpleTokenizer(context_length=ctx))
        self.templates = resolve_templates(templates)
        self.dense = dense
        self.out_indices = tuple(out_indices)
        self.normalize = normalize
        self._text_cache: Dict[Any, Tuple[Any, torch.Tensor]] = {}  # key -> (weights version, embeddings)
        self._pos_cache: Dict[Tuple[int, int], torch.Tensor] = {}
        self.peft_cfg = peft
        apply_peft(self.clip, peft if peft is not None else {"type": "frozen"})

    # ------------------------------------------------------------------ info
    @property
    def embed_dim(self) -> int:
        return int(self.clip.visual.output_dim)

    @property
    def patch_size(self) -> Tuple[int, int]:
        return tuple(self.clip.visual.patch_size)

    def text_frozen(self) -> bool:
        return not any(p.requires_grad for n, p in self.clip.named_parameters()
                       if encoder_of_param(n) in ("text", "shared"))

    def merge(self) -> "OVCLIP":
        """Fold the PEFT method into the weights (inference at frozen-model speed)."""
        merge_peft(self.clip)
        self._text_cache.clear()
        return self

    def train(self, mode: bool = True):
        self._pos_cache.clear()
        return super().train(mode)

    # ------------------------------------------------------------------ image
    def _pos_embed(self, gh: int, gw: int) -> torch.Tensor:
        visual = self.clip.visual
        pos = visual.positional_embedding
        g0h, g0w = visual.grid_size
        if (gh, gw) == (g0h, g0w):
            return pos
        if not pos.requires_grad and (gh, gw) in self._pos_cache:
            return self._pos_cache[(gh, gw)]
        cls, grid = pos[:1], pos[1:]
        grid = grid.reshape(1, g0h, g0w, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid.float(), size=(gh, gw), mode="bicubic", align_corners=False).to(pos.dtype)
        out = torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(gh * gw, -1)])
        if not pos.requires_grad:
            self._pos_cache[(gh, gw)] = out
        return out

    def encode_image(self, img: torch.Tensor, out_indices: Optional[Sequence[int]] = None,
                     dense: Optional[str] = None) -> Dict[str, Any]:
        """``{'cls': [B, D], 'dense': [B, D, h, w], 'features': [[B, width, h, w], ...]}``."""
        visual = self.clip.visual
        dense = dense or self.dense
        out_indices = self.out_indices if out_indices is None else tuple(out_indices)
        x = visual.conv1(img)
        b, c, gh, gw = x.shape
        x = x.reshape(b, c, gh * gw).permute(0, 2, 1)
        x = torch.cat([visual.class_embedding.to(x.dtype).expand(b, 1, -1), x], dim=1)
        x = x + self._pos_embed(gh, gw).to(x.dtype)
        x = visual.patch_dropout(x)
        x = visual.ln_pre(x)
        n = len(visual.transformer.resblocks)
        want = sorted({i + n if i < 0 else i for i in out_indices})
        x_last_in, x_out, feats = run_blocks(visual.transformer, x, want)
        pooled = project(visual, global_embedding(visual, x_out))
        tokens = dense_tokens(visual, check_dense_mode(dense, "OVCLIP.encode_image(dense=)"), x, x_last_in, x_out,
                              (gh, gw))
        if self.normalize:
            pooled = F.normalize(pooled, dim=-1)
            tokens = F.normalize(tokens, dim=-1)
        dense_map = tokens.transpose(1, 2).reshape(b, -1, gh, gw)
        features = [feats[i][:, -gh * gw:].transpose(1, 2).reshape(b, -1, gh, gw) for i in want]
        return {"cls": pooled, "dense": dense_map, "features": features}

    # ------------------------------------------------------------------ text
    def tokenize(self, texts: List[str]) -> torch.Tensor:
        device = next(self.clip.parameters()).device
        return self.tokenizer(texts).to(device)

    def encode_text(self, class_names: Sequence[str], templates: Any = None) -> torch.Tensor:
        """``[C, D]``: each class embedded in every template, normalised, averaged, renormalised.

        Cached per vocabulary whenever the text tower is not being trained at that moment: always
        when no text-side parameter is trainable, and under ``torch.no_grad()`` (all of evaluation)
        for methods that train it. Every entry records :meth:`text_weights_version`, so changed
        weights (an optimizer step, a loaded checkpoint, a merge) are never served stale.
        """
        templates = self.templates if templates is None else resolve_templates(templates)
        device = next(self.clip.parameters()).device
        key = (tuple(class_names), templates, device)
        texts = [t.format(c) for c in class_names for t in templates]
        frozen = self.text_frozen()
        if not (frozen or not torch.is_grad_enabled()):
            self._text_cache.clear()  # trained right now: its entries are about to go stale
            return self._embed_tokens(self.tokenize(texts), len(class_names), len(templates))
        version = self.text_weights_version(coupled=not frozen)
        hit = self._text_cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        with torch.no_grad():
            emb = self._embed_tokens(self.tokenize(texts), len(class_names), len(templates))
        self._text_cache[key] = (version, emb)
        return emb

    def text_weights_version(self, coupled: Optional[bool] = None) -> Tuple[Tuple[int, int, float], ...]:
        """Identity, in-place-update counter and a value sample of every parameter the text
        embeddings depend on.

        torch bumps a tensor's ``_version`` on every in-place change (optimizer steps, ``copy_`` in
        ``load_state_dict``); it is the only cheap signal of "these weights changed", hence this one
        use of a private tensor attribute. Writes through ``.data`` bypass it: mmengine's ``EMAHook``
        swaps the averaged weights in and out that way around every validation and test epoch. So each
        entry also holds the sum of a strided sample of the values (:data:`_SAMPLE` of them), which a
        swap of whole tensors changes; :meth:`merge` also clears the cache. A trained text side may
        be coupled to the image side's PEFT parameters (H-CLIP's DCRC mixes both encoders' blocks), so
        then every PEFT parameter counts.
        """
        coupled = not self.text_frozen() if coupled is None else coupled
        params = [p for n, p in self.clip.named_parameters()
                  if encoder_of_param(n) in ("text", "shared") or (coupled and n.startswith("peft_method."))]
        return tuple((id(p), p._version, v) for p, v in zip(params, _value_samples(params)))

    def _embed_tokens(self, tokens: torch.Tensor, n_cls: int, n_tpl: int) -> torch.Tensor:
        emb = self.clip.encode_text(tokens)
        emb = F.normalize(emb, dim=-1).reshape(n_cls, n_tpl, -1).mean(1)
        return F.normalize(emb, dim=-1) if self.normalize else emb

    def begin_forward(self) -> None:
        """A forward of the whole model starts: the PEFT method may drop its per-forward caches
        (:meth:`ovbench.peft.PeftMethod.begin_forward`); the towers called after it share one
        pre-computation (H-CLIP's DCRC). :meth:`forward` calls it; so does a caller that runs
        ``encode_text`` and ``encode_image`` separately for one input."""
        method = get_peft_method(self.clip)
        if method is not None:
            method.begin_forward()

    def forward(self, img: torch.Tensor, class_names: Sequence[str],
                rows: Optional[Sequence[int]] = None) -> Dict[str, Any]:
        """Both towers in one call (one PEFT pre-computation, e.g. H-CLIP's DCRC, for the pair).

        ``rows``: embed only these entries of ``class_names`` (a training batch's sampled classes).
        A text tower that is not being trained serves them from the whole vocabulary's cached
        embeddings, so sampling never re-encodes; a trained one encodes just those prompts, which is
        where sampling saves text-tower compute."""
        self.begin_forward()
        out = self.encode_image(img)
        if rows is None:
            out["text"] = self.encode_text(class_names)
        elif self.text_frozen() or not torch.is_grad_enabled():
            out["text"] = self.encode_text(class_names)[torch.as_tensor(list(rows), dtype=torch.long)]
        else:
            out["text"] = self.encode_text([class_names[i] for i in rows])
        return out
