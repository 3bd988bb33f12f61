"""Living catalogs: items added to and removed from a trained model without retraining.

Modules: fold (device rows for new items from the users who took them), rows (rows appended
and removed in each table's storage), update (the `edgegnn update` verb: a new model, a new
artifact, and the patch between the artifacts).
"""
