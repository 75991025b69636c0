"""A fingerprint of how this machine computes: the weights after three training steps of a small network,
run with the numerics every stage uses (segsort/__init__.py pins the kernels, `threads` fixes the thread
count). Two machines with the same fingerprint took the same kernels for convolutions, matrix products and
element-wise maths, so the tiny DAG gives them the same tables; `python -m segsort.numerics` prints it."""
import hashlib

import torch

from segsort.stage import load_params, setup_torch


def fingerprint(params: dict) -> str:
    """sha256 (16 hex digits) of a small conv net's weights after three SGD steps, with the stages' numerics."""
    setup_torch(params)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                              torch.nn.Conv2d(16, 8, 3, dilation=2))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    images = torch.randn(4, 3, 40, 40)
    for _ in range(3):
        embedding = torch.nn.functional.normalize(net(images), dim=1).flatten(2)  # (B, 8, N)
        similarity = embedding.transpose(1, 2) @ embedding                        # (B, N, N), a matrix product
        loss = similarity.mul(10.0).logsumexp(dim=2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = b"".join(p.detach().numpy().tobytes() for p in net.parameters())
    return hashlib.sha256(weights).hexdigest()[:16]


if __name__ == "__main__":
    print(f"numerics fingerprint: {fingerprint(load_params())}")
