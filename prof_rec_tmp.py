import pickle, time, os, cProfile, pstats
import numpy as np
from benchmarks.bench_recommender import demo_config, demo_matrix
from benchmarks import bench_recommender_scale as s
from services.recommender.core.candidates import CANDIDATES
from shopai.demo import generate
shop = generate(demo_config(False), progress=False)
users, items, matrix, texts = demo_matrix(shop)
model, big, _ = s.large_model(users, items, matrix, texts, 25, None)
active = np.flatnonzero(np.diff(big.indptr) > 0)
sample = np.random.default_rng(5).choice(active, 300, replace=False)
print(s.request_cost(model, big, sample[:100], CANDIDATES))
pr = cProfile.Profile(); pr.enable()
s.request_cost(model, big, sample, CANDIDATES)
pr.disable(); st = pstats.Stats(pr)
st.sort_stats("cumtime").print_stats(45)
