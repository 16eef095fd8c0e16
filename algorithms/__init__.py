"""One LightningModule per NAS algorithm (DARTS, ENAS, ProxylessNAS, SPOS): not built yet."""
