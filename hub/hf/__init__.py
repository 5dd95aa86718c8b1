"""The Hugging Face Hub HTTP protocol (read side): ``api`` holds the views, ``urls`` their routes."""
