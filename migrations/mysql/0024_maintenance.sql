-- Work one process of the fleet does at a time on a schedule (the metadata
-- backup): a process claims a task by moving its due time forward in one
-- UPDATE; whoever changed the row runs it.
CREATE TABLE maintenance (
    task   VARCHAR(64) NOT NULL PRIMARY KEY,
    due_at BIGINT      NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT INTO maintenance (task, due_at) VALUES ('metadata_backup', 0);
