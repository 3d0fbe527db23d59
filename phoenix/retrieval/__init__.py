"""Phoenix retrieval: two-tower model, training, a live FAISS index of recent posts and its service."""
