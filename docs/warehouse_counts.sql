-- Per-(user, pair) counts of a raw vote log, for VoteData.from_counts.
-- votes(user_id, model_a, model_b, winner): one row per vote, winner one of
-- 'model_a', 'model_b', 'tie', 'tie (bothbad)'. Ties are left out.
-- Each pair is oriented as attnmodel orients it: the model with the higher win
-- rate over the pair's votes is the stronger one; equal rates, the
-- alphabetically first. Output: user_id, pair ('stronger vs weaker'), n, s.
WITH v AS (
    SELECT user_id,
           LEAST(TRIM(model_a), TRIM(model_b)) AS x,
           GREATEST(TRIM(model_a), TRIM(model_b)) AS y,
           CASE TRIM(winner) WHEN 'model_a' THEN TRIM(model_a) ELSE TRIM(model_b) END AS won
    FROM votes
    WHERE TRIM(winner) IN ('model_a', 'model_b')
),
orient AS (
    SELECT x, y, 2 * SUM(CASE WHEN won = x THEN 1 ELSE 0 END) >= COUNT(*) AS x_stronger
    FROM v
    GROUP BY x, y
)
SELECT v.user_id,
       CASE WHEN o.x_stronger THEN v.x || ' vs ' || v.y ELSE v.y || ' vs ' || v.x END AS pair,
       COUNT(*) AS n,
       SUM(CASE WHEN (v.won = v.x) = o.x_stronger THEN 1 ELSE 0 END) AS s
FROM v JOIN orient o ON v.x = o.x AND v.y = o.y
GROUP BY 1, 2
