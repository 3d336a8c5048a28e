"""SOLUTION to exercise 4 (exercises/e04_sinusoidal.py). A spoiler: try the exercise first."""

import torch


def frequencies(d_model):
    return 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (d_model/2,): omega_i


def sinusoidal_encoding(T, d_model):
    angle = torch.arange(T, dtype=torch.float64)[:, None] * frequencies(d_model)[None, :]  # (T, d_model/2)
    pe = torch.empty(T, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)  # columns 2i
    pe[:, 1::2] = torch.cos(angle)  # columns 2i + 1
    return pe


def shift_by(k, d_model):
    b = k * frequencies(d_model)  # (d_model/2,): how far each pair turns in k positions
    M = torch.zeros(d_model, d_model, dtype=torch.float64)
    M[0::2, 0::2] = torch.diag(torch.cos(b))  # new sin = sin a cos b + cos a sin b
    M[0::2, 1::2] = torch.diag(torch.sin(b))
    M[1::2, 0::2] = torch.diag(-torch.sin(b))  # new cos = cos a cos b - sin a sin b
    M[1::2, 1::2] = torch.diag(torch.cos(b))
    return M
