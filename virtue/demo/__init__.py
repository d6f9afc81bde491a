"""`virtue demo`: a local web page to try trained embedders with visual prompts.

Pick a SCaR eval image (or upload one), draw a box, click points or paint a mask; the page shows SAM-2's mask
for that prompt, and for each loaded variant (virtue, global, crop: one checkpoint each) the top-10 captions
and the top-10 images of a gallery, with their scores.

Why not Gradio: installing it would downgrade the pinned pillow 13, and the pipeline's numbers depend on
pillow's resampling. The page is instead served by FastAPI + uvicorn (already installed: MLflow brings them)
as one HTML file with plain JavaScript and a <canvas>; nothing new is installed.

Modules: `models` (one checkpoint loaded for inference, SAM-2's mask), `gallery` (captions and images to
rank, their embeddings cached on disk), `inputs` (requests and uploads checked into prompts and images),
`engine` (answers a prompt: pure Python, no browser needed), `app` (the HTTP routes), `static/` (the page).
"""
