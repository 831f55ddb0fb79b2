"""``rsna-yolo recipe RECIPE.yaml``: the whole recipe (data, conversion, detector, classifier, tuning out of
fold, submission, report) as one resumable command over the existing commands; see docs/recipes.md."""
