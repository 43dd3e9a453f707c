"""Offline evaluation on real and synthetic data: one stack for ``yuedu evaluate`` and ``training``.

Small modules, one concept each (callers import from the module that owns a name):

* :mod:`~recsys.evaluation.protocols`: how events become train / validation / test
  (:func:`~recsys.evaluation.protocols.split_events` for every protocol: strong, temporal,
  leave-last; the study's protocols per data set; input-only events; internal splits; the refit split);
* :mod:`~recsys.evaluation.matrices`: matrix choices (weightings) and the title support cut;
* :mod:`~recsys.evaluation.batch`: recommend for a fold's held-out readers and score the lists with
  :mod:`recsys.metrics` (the one set of metric functions and names);
* :mod:`~recsys.evaluation.tuning`: parameter grids and per-model tuning on validation;
* :mod:`~recsys.evaluation.blend`: the hybrid's blend weights fitted on held-out readers;
* :mod:`~recsys.evaluation.baselines`: raw ``implicit`` models with default parameters, the oracle;
* :mod:`~recsys.evaluation.promotion`: what business filters and reading promotion cost;
* :mod:`~recsys.evaluation.results` and :mod:`~recsys.evaluation.compare`: per-seed rows, mean and
  spread over seeds, the validation pick and its paired reader-bootstrap intervals;
* :mod:`~recsys.evaluation.study`: ``yuedu evaluate --dataset``, assembled from the above.

One study = one data set x one protocol x several seeds. Per seed:

1. the protocol splits the events into train / validation / test (``protocols.make_split``);
2. every yuedu model is tuned on VALIDATION only: a small grid over matrix choices (binary,
   BM25, recency decay; titles with fewer than ``min_title_readers`` training readers pruned)
   and model parameters, ranked by NDCG@10 (``tuning.GRIDS``); EASE scores its whole ``lambda``
   grid from one spectral decomposition (:class:`recsys.models.ease.EASESpectrum`);
3. a hybrid blends the tuned EASE, RP3beta, ALS and popularity with weights fitted on validation
   (strong generalisation: also on internal splits of the training readers,
   ``protocols.internal_splits``, which then also decide between the models);
4. with ``refit`` (default) the chosen configurations are refitted on everything the test step may
   know (``protocols.refit_split``: train + the validation readers' events, or all events before the
   test cut-off); the TEST fold is then touched once per seed and model;
5. raw ``implicit`` ALS, BPR and cosine item-kNN with their default parameters are fitted on the
   same training matrix and evaluated on the same test fold by the same metric code (baseline
   rows), plus an oracle for synthetic data;
6. on a synthetic city the test model (the hybrid, else the validation winner) is also scored as the
   app would show it on the cut-off date: with the business filters, then with reading promotion
   (``constrained`` rows, ``promotion.constrained_rows``).

Results are per-seed rows (``results.SeedResult``); ``compare.summarise`` gives mean and standard
deviation over seeds; ``compare.compare`` gives the headline: the model chosen on validation in each
seed and its ratios to raw ALS and tuned EASE with paired reader-bootstrap intervals. Metrics
(``batch.METRICS``, names and definitions in :mod:`recsys.metrics`): ``recall@20`` / ``recall@50``
(normalised: hits / min(k, |T|)), ``ndcg@10`` / ``ndcg@100`` and ``coverage@20`` (catalogue
coverage of the top 20).
"""
