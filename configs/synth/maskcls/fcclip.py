# FC-CLIP-style baseline (Yu et al., NeurIPS 2023) on the frozen generator: an in-vocabulary
# head (mask pooling of the generator's mask_features -> MLP -> joint space) trains; the
# frozen CLIP's mask-pooled scores are the out-of-vocabulary classifier; test-time geometric
# ensemble p_in^(1-a) * p_out^a with FC-CLIP's a = 0.4 (seen classes) / 0.8 (unseen).
_base_ = ['./_base_.py']
model = dict(
    clip=dict(peft=dict(type='frozen')),
    in_vocab_head=dict(hidden_dim=128, num_layers=2, use_queries=False),
    ensemble=dict(alpha_seen=0.4, alpha_unseen=0.8),
)
