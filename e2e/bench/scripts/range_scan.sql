\set first random(1, 99001)
\set last :first + 999
SELECT aid, abalance FROM accounts WHERE aid BETWEEN :first AND :last;
