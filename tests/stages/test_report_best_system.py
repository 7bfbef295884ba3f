from stages.report import comparison


def scores(acc: float) -> dict:
    return {"accuracy": acc, "accuracy_ci_lo": acc - 0.02, "accuracy_ci_hi": acc + 0.02}


def metrics(tuned: float, tfidf: float, best: str) -> dict:
    gain = {"baseline": "tfidf_logreg", "metric": "accuracy", "accuracy": tuned - tfidf,
            "accuracy_ci_lo": tuned - tfidf - 0.03, "accuracy_ci_hi": tuned - tfidf + 0.03}
    return {"tuned": scores(tuned), "base": scores(0.1), "baselines": {"tfidf_logreg": scores(tfidf)},
            "gain_over_best_baseline": gain, "best_system": best}


def test_card_names_a_cheap_alternative_that_wins():
    text = comparison(metrics(0.72, 0.75, "tfidf_logreg"))
    assert "The best system on this test set is TF-IDF + logistic regression (accuracy 0.7500)" in text


def test_card_says_nothing_more_when_the_tuned_model_is_best():
    assert "The best system" not in comparison(metrics(0.80, 0.75, "tuned"))


def test_reviewer_page_warns_when_a_cheap_alternative_is_best():
    from tunebuild.report_page import checks

    facts = {"ingest": {"total": {"quarantined": 0}}, "curate": {"pii": {}},
             "tokenize": {n: {} for n in ("train", "validation", "test")}}
    ctx = {"alternatives": {"tfidf_logreg": "TF-IDF + logistic regression"}, "missing": []}
    extra = {"leakage": {"count": 0}}
    found = checks(facts | {"metrics": metrics(0.72, 0.75, "tfidf_logreg")}, extra, ctx)
    best = [f for f in found if f["kind"] == "best system"]
    assert len(best) == 1 and best[0]["severity"] == "warning"
    assert best[0]["message"].startswith("TF-IDF + logistic regression scores higher than the tuned model")
    found = checks(facts | {"metrics": metrics(0.80, 0.75, "tuned")}, extra, ctx)
    assert not [f for f in found if f["kind"] == "best system"]
