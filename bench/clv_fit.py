"""Time the CLV models on synthetic customers drawn from BG/NBD + Gamma-Gamma (not a test: prints timings).

    uv run python bench/clv_fit.py [--customers 1000000] [--seed 1]

Histories are in whole days like real order data (first purchases spread over three years, purchase days rounded up),
so many customers share a (frequency, recency, T) history and the fit groups them.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pipeline.lib import clv

# Day-scale BG/NBD and IDR-scale Gamma-Gamma values of a plausible Indonesian webshop (mean order ~750k IDR).
TRUE_BGNBD = {"r": 0.3, "alpha": 60.0, "a": 0.8, "b": 3.0}
TRUE_GAMMA_GAMMA = {"p": 5.0, "q": 3.0, "gamma": 300_000.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    ages = rng.integers(0, 3 * 365 + 1, args.customers).astype(np.float64)
    sample = clv.sample_bgnbd(args.customers, T=ages, rng=rng, **TRUE_BGNBD)
    frequency, T = sample["frequency"], sample["T"]
    recency = np.minimum(np.ceil(sample["recency"]), T)
    monetary = clv.sample_gamma_gamma(frequency, rng=rng, **TRUE_GAMMA_GAMMA)
    distinct = len(np.unique(np.column_stack([frequency, recency, T]), axis=0))
    print(f"{args.customers:,} customers, {np.mean(frequency > 0):.1%} repeat buyers, {distinct:,} distinct histories")

    started = time.perf_counter()
    bgnbd = clv.fit_bgnbd(frequency, recency, T, period="days")
    bgnbd_seconds = time.perf_counter() - started
    started = time.perf_counter()
    gamma_gamma = clv.fit_gamma_gamma(frequency, monetary)
    gamma_gamma_seconds = time.perf_counter() - started
    started = time.perf_counter()
    value = clv.customer_lifetime_value(
        bgnbd, gamma_gamma, frequency, recency, T, monetary, horizon_months=12, monthly_discount_rate=0.01, margin=0.35
    )
    score_seconds = time.perf_counter() - started

    print(
        f"BG/NBD fit      {bgnbd_seconds:7.2f} s  {bgnbd.iterations} iterations  "
        f"r={bgnbd.r:.3f} alpha={bgnbd.alpha:.2f} a={bgnbd.a:.3f} b={bgnbd.b:.3f}  (true {TRUE_BGNBD})"
    )
    print(
        f"Gamma-Gamma fit {gamma_gamma_seconds:7.2f} s  {gamma_gamma.iterations} iterations  "
        f"p={gamma_gamma.p:.3f} q={gamma_gamma.q:.3f} gamma={gamma_gamma.gamma:,.0f}  (true {TRUE_GAMMA_GAMMA})"
    )
    print(f"12-month CLV    {score_seconds:7.2f} s  mean {value.mean():,.0f} IDR")
    print(f"total fit       {bgnbd_seconds + gamma_gamma_seconds:7.2f} s")


if __name__ == "__main__":
    main()
