"""The Xen side: the xenstore client, a vif's inputs (context), the vif-post.d hooks."""
