"""MLflow pyfunc flavour of a yuedu model directory, logged as "models from code" (no pickled objects).

``mlflow.pyfunc.load_model(uri).predict({"reader_id": [...]}, params={"n": 10})`` returns one row per
reader with its top-n ``title_ids`` and ``scores``.
"""

from __future__ import annotations

import mlflow.pyfunc
from mlflow.models import set_model


class YueduModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from recsys.models import load_model

        self.model = load_model(context.artifacts["model_dir"])

    def predict(self, context, model_input, params=None):
        import pandas as pd

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        n = int((params or {}).get("n", 10))
        # MLflow may hand a dict of lists over as one row holding the list: explode is a no-op otherwise.
        readers = frame["reader_id"].explode().astype(str).tolist()
        ids, scores = self.model.recommend_ids(readers, n)
        return pd.DataFrame({"reader_id": readers, "title_ids": list(ids), "scores": [list(s) for s in scores]})


set_model(YueduModel())
