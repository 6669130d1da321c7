"""Data: `bundled` (the photos that ship with scikit-image / scikit-learn / matplotlib, with edge
maps), `sam_edges` (the array_record edge-map dataset format) and `pipeline` (grain batches)."""
