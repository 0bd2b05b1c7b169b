"""The AOI workspace data contract (TAO Visual ChangeNet classify compatible)."""
