"""The same models, optimizer and step as the C++ trainer, in Python torch.

A baseline for tools/bench training: the mlp-policy network (standardised
inputs and targets, MSE, AdamW) and the lora-lm byte transformer (pre-LN
blocks, q/k/v/o + 4x GELU MLP, causal softmax attention, cross-entropy,
AdamW, gradient clipping; with --lora only rank-r adapters on q and v train),
each step doing what the C++ loop does: seed, sample a batch, zero_grad,
forward, loss.item(), backward, clip, step. Prints one JSON line with the
time from step --skip to the last step.

  python3 torch_baseline.py --recipe mlp-policy|lora-lm [--lora] --hp JSON --threads N --skip S
"""
import argparse
import json
import math
import time

import torch
from torch import nn
import torch.nn.functional as F


class MlpPolicy(nn.Module):
    def __init__(self, inputs, hidden, outputs):
        super().__init__()
        layers, width = [], inputs
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.net = nn.Sequential(*layers, nn.Linear(width, outputs))
        self.register_buffer("in_mean", torch.zeros(inputs))
        self.register_buffer("in_std", torch.ones(inputs))
        self.register_buffer("out_mean", torch.zeros(outputs))
        self.register_buffer("out_std", torch.ones(outputs))

    def forward(self, obs):
        return self.net((obs - self.in_mean) / self.in_std)


class LoraLinear(nn.Module):
    def __init__(self, d_in, d_out, rank, alpha):
        super().__init__()
        bound = 1 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(d_out, d_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(d_out).uniform_(-bound, bound))
        self.rank = rank
        if rank:
            self.lora_A = nn.Parameter(torch.empty(rank, d_in).uniform_(-bound, bound))
            self.lora_B = nn.Parameter(torch.zeros(d_out, rank))
            self.scale = alpha / rank

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)
        if self.rank:
            y = y + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scale
        return y


class Block(nn.Module):
    def __init__(self, d, heads, rank, alpha):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.v = LoraLinear(d, d, rank, alpha), LoraLinear(d, d, rank, alpha)
        self.k, self.o = LoraLinear(d, d, 0, 0), LoraLinear(d, d, 0, 0)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, mask):
        B, T, C = x.shape
        hd = C // self.heads
        h = self.ln1(x)
        split = lambda t: t.view(B, T, self.heads, hd).transpose(1, 2)
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        att = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = torch.softmax(att.masked_fill(mask, float("-inf")), -1)
        y = torch.matmul(att, v).transpose(1, 2).contiguous().view(B, T, C)
        x2 = x + self.o(y)
        return x2 + self.fc2(F.gelu(self.fc1(self.ln2(x2))))


class Lm(nn.Module):
    def __init__(self, context, d, layers, heads, rank, alpha):
        super().__init__()
        self.tok, self.pos = nn.Embedding(256, d), nn.Embedding(context, d)
        self.blocks = nn.ModuleList(Block(d, heads, rank, alpha) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, 256, bias=False)
        self.register_buffer("mask", torch.ones(context, context, dtype=torch.bool).triu(1))

    def forward(self, idx):
        T = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(T))
        for block in self.blocks:
            x = block(x, self.mask[:T, :T])
        return self.head(self.ln_f(x))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--recipe", required=True)
    p.add_argument("--lora", action="store_true")
    p.add_argument("--hp", default="{}")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip", type=int, default=20)
    a = p.parse_args()
    hp = json.loads(a.hp)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    steps, batch = hp.get("steps", 1000), hp.get("batch_size", 64)
    lr, clip = hp.get("learning_rate", 1e-3), 0.0

    if a.recipe == "mlp-policy":
        n = 20000
        obs, act = torch.randn(n, 8), torch.randn(n, 2)
        model = MlpPolicy(8, hp.get("hidden_sizes", [256, 256]), 2)
        train = torch.arange(int(n * 0.9))

        def loss_fn(step):
            idx = train[torch.randint(len(train), (batch,))]
            pred = model(obs.index_select(0, idx))
            target = (act.index_select(0, idx) - model.out_mean) / model.out_std
            return F.mse_loss(pred, target)
    else:
        T = hp.get("context_length", 128)
        model = Lm(T, hp.get("d_model", 128), hp.get("n_layers", 4), hp.get("n_heads", 4),
                   hp.get("lora_rank", 8) if a.lora else 0, hp.get("lora_alpha", 16))
        if a.lora:
            for name, param in model.named_parameters():
                param.requires_grad_("lora_" in name)
        data = torch.randint(256, (200000,))
        clip = hp.get("grad_clip", 1.0)

        def loss_fn(step):
            starts = torch.randint(len(data) - T - 1, (batch, 1))
            offsets = starts + torch.arange(T).view(1, T)
            x = data.index_select(0, offsets.view(-1)).view(batch, T)
            y = data.index_select(0, (offsets + 1).view(-1)).view(batch, T)
            return F.cross_entropy(model(x).view(batch * T, 256), y.view(-1))

    params = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=hp.get("weight_decay", 0.0))
    model.train()
    start = None
    # As the C++ bench: from `skip` completed steps to `steps - 1` (the last
    # step runs the final validation there).
    for step in range(steps - 1):
        if step == a.skip:
            start = time.perf_counter()
        torch.manual_seed(step + 7)
        optimizer.zero_grad()
        loss = loss_fn(step)
        loss.item()
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
    seconds = time.perf_counter() - start
    measured = steps - 1 - a.skip
    print(json.dumps({"steps": measured, "seconds": seconds, "steps_per_second": measured / seconds,
                      "samples_per_second": measured * batch / seconds,
                      "parameters": sum(q.numel() for q in model.parameters()),
                      "trainable": sum(q.numel() for q in params), "threads": a.threads}))


if __name__ == "__main__":
    main()
