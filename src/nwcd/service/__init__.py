"""The wallet service: sequences the pipeline steps; holds no protocol rules itself."""
